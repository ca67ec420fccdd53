#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Moves one HTTP request to Segment (or a Segment-compatible collector) and returns the answer.
///
/// RefinerSegment builds the whole request — URL, method, headers, body bytes, timeout — and decides what
/// the answer means; a transport only moves bytes. Host apps plug in the HTTP layer they already run
/// (URLSession via `RefinerSegmentURLSession`, AsyncHTTPClient, Vapor's `Client`, a queue of their own),
/// the way `ClientTransport` works in swift-openapi-runtime. `Docs/Transports.md` shows complete adapters,
/// and `RefinerSegmentTesting`'s `TransportCompatibilityTest` checks one against a loopback server.
///
/// A conforming type must guarantee:
/// - **Thread safety.** ``send(_:)`` may be called from any task, and concurrently when the pipeline
///   sends more than one batch at a time.
/// - **Fidelity.** The method, every header and the body go out exactly as given (a transport may add
///   `Host`, `Content-Length` and `Connection`, nothing that changes their meaning), and the response's
///   status, headers and body come back unaltered. Redirects need not be followed.
/// - **Status is not failure.** Any HTTP response, whatever its status (400, 429, 500...), is *returned*,
///   not thrown: the pipeline applies Segment's retry rules to it, and it needs headers such as
///   `Retry-After`.
/// - **Throw only when there is no response:** the connection failed, the request timed out (honour
///   ``SegmentRequest/timeout``), or the task was cancelled. The pipeline retries such failures.
/// - **Cancellation.** When the calling task is cancelled, stop promptly (abandon the request) and throw.
///   `shutdown(deadline:)` relies on it to return on time.
/// - **No secrets in errors.** The request carries the write key in its `Authorization` header and body;
///   do not put either into a thrown error. (The pipeline also redacts the key from what it reports.)
public protocol SegmentTransport: Sendable {
    /// Sends a request and returns the server's answer, whatever its status.
    ///
    /// - Throws: Only when no HTTP response was received: a connection failure, a timeout, cancellation.
    func send(_ request: SegmentRequest) async throws -> SegmentResponse
}

/// One HTTP request, fully built by RefinerSegment: the transport sends it as it is.
///
/// Its description and reflection leave out the `Authorization` header and the body, which carry the
/// write key.
public struct SegmentRequest: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    /// The full URL, such as `https://api.segment.io/v1/batch`.
    public var url: URL
    /// The HTTP method, `POST` for Segment's batch endpoint.
    public var method: String
    /// The header fields, by name as written (`Content-Type`, `Authorization`, `User-Agent`,
    /// `X-Retry-Count`); names are distinct ignoring case.
    public var headerFields: [String: String]
    /// The body bytes (UTF-8 JSON).
    public var body: [UInt8]
    /// How long the transport may take before it gives up and throws.
    public var timeout: Duration

    /// Creates a request.
    public init(
        url: URL,
        method: String = "POST",
        headerFields: [String: String] = [:],
        body: [UInt8] = [],
        timeout: Duration = .seconds(30)
    ) {
        self.url = url
        self.method = method
        self.headerFields = headerFields
        self.body = body
        self.timeout = timeout
    }

    /// The value of a header field, its name compared without regard to case.
    public func headerField(_ name: String) -> String? {
        HeaderLookup.value(of: name, in: headerFields)
    }

    /// `POST https://api.segment.io/v1/batch (12345 bytes)`, without headers or body.
    public var description: String { "\(method) \(url.absoluteString) (\(body.count) bytes)" }

    /// A mirror that shows the method, URL and body size only.
    public var customMirror: Mirror {
        Mirror(self, children: ["method": method, "url": url.absoluteString, "bodyByteCount": body.count])
    }
}

/// An HTTP response, whatever its status: what a ``SegmentTransport`` returns.
public struct SegmentResponse: Sendable, Hashable {
    /// The HTTP status code, such as 200 or 429.
    public var statusCode: Int
    /// The header fields, by name as received; look them up with ``headerField(_:)``.
    public var headerFields: [String: String]
    /// The body bytes.
    public var body: [UInt8]

    /// Creates a response.
    public init(statusCode: Int, headerFields: [String: String] = [:], body: [UInt8] = []) {
        self.statusCode = statusCode
        self.headerFields = headerFields
        self.body = body
    }

    /// The value of a header field, its name compared without regard to case (`retry-after`).
    public func headerField(_ name: String) -> String? {
        HeaderLookup.value(of: name, in: headerFields)
    }
}

enum HeaderLookup {
    static func value(of name: String, in fields: [String: String]) -> String? {
        if let value = fields[name] { return value }
        let lowered = name.lowercased()
        for (key, value) in fields where key.lowercased() == lowered { return value }
        return nil
    }
}
