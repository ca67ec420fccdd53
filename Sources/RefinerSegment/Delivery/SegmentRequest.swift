#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
