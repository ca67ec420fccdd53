import Foundation
import RefinerSegment

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A ``SegmentTransport`` on `URLSession`: Foundation's HTTP client on Apple platforms and on Linux
/// (FoundationNetworking).
///
/// Each request carries its own timeout (``SegmentRequest/timeout``), enforced as a bound on the whole
/// exchange, so a server that accepts the connection and then stalls (before its answer, or after its head)
/// cannot hold a batch longer; cancelling the calling task cancels the request. Any HTTP status is returned
/// as a response, a 3xx included: redirects are never followed (a redirected POST loses its body or is
/// replayed where the key should not go), so the pipeline sees the 3xx and its `Location`. Only a failure
/// to get an answer throws: a `URLError` (no connection, a timeout), `CancellationError`, or
/// ``SegmentTransportError/permanent(_:underlying:)`` for a TLS certificate or handshake failure, which
/// retrying cannot mend. The session is used as given, so hosts can share one or tune its configuration;
/// whatever its delegate, each request gets a delegate of its own that refuses redirects.
///
/// The body is sent from a stream the session can ask for again: when a reused keep-alive connection turns
/// out to be closed, the HTTP layer resends the request on a new one, and must start the body over. On
/// Linux, FoundationNetworking cannot rewind an in-memory body (`httpBody`) for libcurl, which then resent
/// the headers with no body bytes: a request shorter than its `Content-Length` that stalled until the
/// timeout (Docs/Reliability.md). On Linux the body therefore goes out with chunked transfer encoding.
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
    /// - Throws: ``SegmentTransportError`` (not retryable) for a TLS certificate or handshake failure;
    ///   `URLError` when no response came (connection refused, timed out); `CancellationError` when the
    ///   calling task was cancelled.
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
        let body = Data(request.body)
        urlRequest.httpBodyStream = InputStream(data: body)
        #if !canImport(FoundationNetworking)
        // Darwin sends a stream with this length as it is; FoundationNetworking would add chunked encoding
        // beside it, which no request may carry.
        urlRequest.setValue("\(body.count)", forHTTPHeaderField: "Content-Length")
        #endif
        let delegate = RequestDelegate(body: body)
        try Task.checkCancellation()
        let prepared = urlRequest
        let (data, response) = try await withThrowingTaskGroup(of: (Data, URLResponse)?.self) { group in
            // URLSession's own timeout is an idle timeout and is not honoured on every platform, so the
            // request's timeout is also enforced here, as a bound on the whole exchange.
            group.addTask {
                do {
                    return try await Self.exchange(prepared, on: session, delegate: delegate)
                } catch {
                    throw Self.classify(error)
                }
            }
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

    /// Runs one data task with `delegate` as its own delegate (`data(for:delegate:)` does not give the
    /// delegate to the task on Linux, so it would not be asked about redirects or a new body stream).
    private static func exchange(
        _ request: URLRequest,
        on session: URLSession,
        delegate: RequestDelegate
    ) async throws -> (Data, URLResponse) {
        let task = Locked<URLSessionDataTask?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<(Data, URLResponse), any Error>) in
                let dataTask = session.dataTask(with: request) { data, response, error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let response {
                        continuation.resume(returning: (data ?? Data(), response))
                    } else {
                        continuation.resume(throwing: URLError(.badServerResponse))
                    }
                }
                dataTask.delegate = delegate
                let cancelled = task.withLock { stored -> Bool in
                    stored = dataTask
                    return Task.isCancelled
                }
                dataTask.resume()
                if cancelled { dataTask.cancel() }
            }
        } onCancel: {
            task.withLock { $0 }?.cancel()
        }
    }

    /// A TLS failure as a permanent ``SegmentTransportError``; any other error as it is.
    ///
    /// Apple platforms report TLS failures with their own `URLError` codes. FoundationNetworking reports
    /// every libcurl error it has no code for, TLS ones included, as `URLError.unknown` with libcurl's
    /// message ("SSL certificate problem: self-signed certificate", "...SSL routines::wrong version
    /// number"), so there the message tells.
    static func classify(_ error: any Error) -> any Error {
        guard let urlError = error as? URLError else { return error }
        let tlsCodes: Set<URLError.Code> = [
            .secureConnectionFailed, .serverCertificateHasBadDate, .serverCertificateUntrusted,
            .serverCertificateHasUnknownRoot, .serverCertificateNotYetValid, .clientCertificateRejected,
            .clientCertificateRequired,
        ]
        let message = urlError.localizedDescription.lowercased()
        let isTLS =
            tlsCodes.contains(urlError.code)
            || (urlError.code == .unknown
                && (message.contains("ssl") || message.contains("tls") || message.contains("certificate")))
        guard isTLS else { return error }
        return SegmentTransportError.permanent(
            "TLS handshake or certificate failure (URLError \(urlError.code.rawValue)): "
                + LogText.singleLine(String(urlError.localizedDescription.prefix(300))),
            underlying: error)
    }
}

/// The delegate of one request: it refuses every redirect, so a 3xx comes back as the answer, and it gives
/// the HTTP layer the body again from the start whenever the request must be resent.
///
/// `Sendable`: its one stored property is immutable and `Data` is `Sendable`.
final class RequestDelegate: NSObject, URLSessionTaskDelegate, Sendable {
    private let body: Data

    init(body: Data) {
        self.body = body
    }

    func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        needNewBodyStream completionHandler: @escaping @Sendable (InputStream?) -> Void
    ) {
        completionHandler(InputStream(data: body))
    }

    func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest,
        completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
