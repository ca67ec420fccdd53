import Foundation
import RefinerSegment

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A ``SegmentTransport`` on `URLSession`: Foundation's HTTP client on Apple platforms and on Linux
/// (FoundationNetworking).
///
/// Each request carries its own timeout (``SegmentRequest/timeout``, the longest silence allowed while
/// waiting for the server); cancelling the calling task cancels the request. Any HTTP status is returned as
/// a response; only a failure to get one (no connection, a timeout, cancellation) throws, as a `URLError`
/// or `CancellationError`. The session is used as given, so hosts can share one or tune its configuration.
public struct URLSessionTransport: SegmentTransport {
    /// The session requests go through.
    public let session: URLSession

    /// Creates a transport on a session; by default an ephemeral one (no cookies, no cache) of its own.
    public init(session: URLSession = URLSessionTransport.makeSession()) {
        self.session = session
    }

    /// An ephemeral session without cookies or a cache, as a source that only posts batches wants.
    public static func makeSession() -> URLSession {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration)
    }

    /// Sends the request and returns the answer, whatever its status.
    ///
    /// - Throws: `URLError` when no response came (connection refused, timed out), or `CancellationError`
    ///   when the calling task was cancelled.
    public func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let session = self.session
        let seconds =
            Double(request.timeout.components.seconds)
            + Double(request.timeout.components.attoseconds) * 1e-18
        var urlRequest = URLRequest(
            url: request.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: seconds)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headerFields {
            urlRequest.setValue(value, forHTTPHeaderField: name)
        }
        urlRequest.httpBody = Data(request.body)
        try Task.checkCancellation()
        let prepared = urlRequest
        let (data, response) = try await withThrowingTaskGroup(of: (Data, URLResponse)?.self) { group in
            // URLSession's own timeout is an idle timeout and is not honoured on every platform, so the
            // request's timeout is also enforced here, as a bound on the whole exchange.
            group.addTask { try await session.data(for: prepared) }
            group.addTask {
                try await Task.sleep(for: request.timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let answer = first else {
                throw URLError(.timedOut)
            }
            return answer
        }
        guard let http = response as? HTTPURLResponse else {
            throw URLError(.badServerResponse)
        }
        var headerFields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headerFields[name] = value }
        }
        return SegmentResponse(statusCode: http.statusCode, headerFields: headerFields, body: [UInt8](data))
    }
}
