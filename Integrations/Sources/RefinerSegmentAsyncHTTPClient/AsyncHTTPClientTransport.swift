import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import RefinerSegment

#if canImport(FoundationEssentials)
import FoundationEssentials  // URL
#else
import Foundation
#endif

/// A ``SegmentTransport`` on AsyncHTTPClient, for servers built on SwiftNIO (Hummingbird, Vapor through
/// `app.http.client.shared`, gRPC, a plain NIO service).
///
/// The request's ``SegmentRequest/timeout`` bounds the whole exchange, from connecting to the last byte of
/// the response body (AsyncHTTPClient's own deadline stops at the response head). Cancelling the calling
/// task cancels the request. Every HTTP status is returned as a response; `send` throws only when there is
/// none:
/// - `CancellationError` when the calling task was cancelled;
/// - `HTTPClientError.deadlineExceeded` when the timeout passed first;
/// - otherwise AsyncHTTPClient's or SwiftNIO's error as it was thrown (TLS, DNS, a connection refused:
///   AsyncHTTPClient tries to connect again until the timeout, then throws the last connection error).
///
/// None of them carries the request's headers or body, so the write key stays out of errors.
///
/// **Redirects are never followed.** A 3xx is returned as the answer (the pipeline fails the batch for good
/// and names the `Location`), so no request, whose body carries the write key, is ever sent on to another
/// address or from https to http. The transport therefore never runs on a client it did not configure
/// itself: `HTTPClient.shared` follows redirects, and a client's redirect setting cannot be read back.
public struct AsyncHTTPClientTransport: SegmentTransport {
    /// The client requests go through, configured by this module to disallow redirects.
    private let client: HTTPClient
    /// The most response-body bytes kept; the rest is read and dropped. Segment answers with a few bytes of
    /// JSON, so this only guards memory against a misbehaving proxy.
    public var maximumResponseBytes: Int

    /// Creates a transport on a client that every transport made this way shares, as `HTTPClient.shared`
    /// is shared, and that needs no shutdown: AsyncHTTPClient's defaults, on
    /// `HTTPClient.defaultEventLoopGroup`, with redirects disallowed.
    public init(maximumResponseBytes: Int = 1 << 20) {
        self.init(client: sharedClient, maximumResponseBytes: maximumResponseBytes)
    }

    private init(client: HTTPClient, maximumResponseBytes: Int) {
        self.client = client
        self.maximumResponseBytes = maximumResponseBytes
    }

    /// Runs `body` with a transport on a client of its own, and shuts the client down when `body` returns
    /// or throws.
    ///
    /// Use it for settings of your own (TLS roots, a proxy, connection pool sizes). Whatever `configuration`
    /// says about redirects, the client disallows them. Let the pipeline finish (its `run()` returned)
    /// before `body` returns: requests sent after the client has shut down throw.
    ///
    /// - Parameters:
    ///   - configuration: The client's settings; `redirectConfiguration` is replaced by `.disallow`.
    ///   - eventLoopGroup: The event loops the client runs on.
    ///   - maximumResponseBytes: See ``maximumResponseBytes``.
    ///   - body: The work that uses the transport.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, or the client's error when it cannot shut down.
    public static func withTransport<Result>(
        configuration: HTTPClient.Configuration = HTTPClient.Configuration(),
        eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup,
        maximumResponseBytes: Int = 1 << 20,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AsyncHTTPClientTransport) async throws -> sending Result
    ) async throws -> sending Result {
        var configuration = configuration
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        let result: Result
        do {
            result = try await body(
                AsyncHTTPClientTransport(client: client, maximumResponseBytes: maximumResponseBytes))
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return result
    }

    /// Sends the request and returns the answer, whatever its status.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled, `HTTPClientError.deadlineExceeded`
    ///   when the request's timeout passes, or the client's error when no response came.
    public func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let outgoing = Self.makeClientRequest(request)
        let timeout = request.timeout
        do {
            return try await withThrowingTaskGroup(of: SegmentResponse?.self) { group in
                group.addTask {
                    try await exchange(outgoing, timeout: timeout)
                }
                group.addTask {
                    // The bound on the whole exchange, body included.
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw HTTPClientError.deadlineExceeded
                }
                return response
            }
        } catch {
            // AsyncHTTPClient reports a cancelled task as `HTTPClientError.cancelled` (or whatever stopped
            // first): say what happened, in Swift's own terms.
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }

    private static func makeClientRequest(_ request: SegmentRequest) -> HTTPClientRequest {
        var outgoing = HTTPClientRequest(url: request.url.absoluteString)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headerFields {
            outgoing.headers.add(name: name, value: value)
        }
        outgoing.body = .bytes(request.body)  // a known length: sent with Content-Length
        return outgoing
    }

    private func exchange(_ outgoing: HTTPClientRequest, timeout: Duration) async throws -> SegmentResponse {
        let response = try await client.execute(outgoing, timeout: TimeAmount(timeout))
        var headerFields: [String: String] = [:]
        for (name, value) in response.headers {
            // A repeated field is one field with its values joined by commas (RFC 9110, section 5.3).
            headerFields[name] = headerFields[name].map { "\($0), \(value)" } ?? value
        }
        var body: [UInt8] = []
        for try await chunk in response.body {
            let room = maximumResponseBytes - body.count
            if room > 0 { body.append(contentsOf: chunk.readableBytesView.prefix(room)) }
        }
        // Reading a body may end without an error when the task is cancelled; a cut body is not an answer.
        try Task.checkCancellation()
        return SegmentResponse(statusCode: Int(response.status.code), headerFields: headerFields, body: body)
    }
}

/// The client behind ``AsyncHTTPClientTransport/init(maximumResponseBytes:)``: made on first use and never
/// shut down, like `HTTPClient.shared` (a global, so it is never deinitialized, and AsyncHTTPClient's check
/// that a released client was shut down never runs). Unlike it, it never follows a redirect.
private let sharedClient = HTTPClient(
    eventLoopGroup: HTTPClient.defaultEventLoopGroup,
    configuration: HTTPClient.Configuration(redirectConfiguration: .disallow)
)
