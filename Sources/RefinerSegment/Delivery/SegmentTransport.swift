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
///   A graceful shutdown's grace period and the cancellation of `SegmentPipeline.run()` rely on it.
/// - **No secrets in errors.** The request carries the write key in its `Authorization` header and body;
///   do not put either into a thrown error. (The pipeline also redacts the key from what it reports.)
public protocol SegmentTransport: Sendable {
    /// Sends a request and returns the server's answer, whatever its status.
    ///
    /// - Throws: Only when no HTTP response was received: a connection failure, a timeout, cancellation.
    func send(_ request: SegmentRequest) async throws -> SegmentResponse
}
