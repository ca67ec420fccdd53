import RefinerSegment
import ServiceLifecycle

/// A ``SegmentPipeline`` as a swift-service-lifecycle `Service`: it sends while the service group runs,
/// drains at graceful shutdown, and stops at once when cancelled.
///
/// ```swift
/// let pipeline = try SegmentPipeline(writeKey: key, transport: AsyncHTTPClientTransport())
/// let group = ServiceGroup(
///     configuration: ServiceGroupConfiguration(
///         services: [.init(service: SegmentPipelineService(pipeline)), .init(service: httpServer)],
///         gracefulShutdownSignals: [.sigterm, .sigint],
///         logger: logger))
/// try await group.run()
/// ```
///
/// List it *before* the services that record into it: a group shuts its services down in reverse order,
/// so the HTTP server stops taking webhooks first and the pipeline drains after it.
///
/// - Graceful shutdown (SIGTERM, `ServiceGroup.triggerGracefulShutdown()`): the pipeline accepts no more
///   messages (`record` throws ``SegmentDeliveryError/Code/shutDown``) and keeps delivering what it holds;
///   `run()` returns once everything is delivered or has failed for good.
/// - Cancellation (the group's `maximumGracefulShutdownDuration` passed, or another service failed): the
///   pipeline stops at once; what it has not delivered stays in its store (a durable store keeps it for the
///   next start; the in-memory one reports it as ``SegmentOutcome/handedBack(_:)``).
///
/// Set `maximumGracefulShutdownDuration` on the group: it is the one bound on how long the server and the
/// pipeline take to stop together.
public struct SegmentPipelineService: Service, CustomStringConvertible {
    /// The pipeline this service runs.
    public let pipeline: SegmentPipeline

    /// Creates the service for a pipeline. Run each pipeline in one service only.
    public init(_ pipeline: SegmentPipeline) {
        self.pipeline = pipeline
    }

    /// Runs the pipeline until graceful shutdown has drained it, or until cancelled.
    ///
    /// - Throws: What the pipeline's `run()` throws.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await pipeline.run()
        } onGracefulShutdown: { [pipeline] in
            pipeline.triggerGracefulShutdown()
        }
    }

    /// `SegmentPipelineService(SegmentPipeline(https://api.segment.io))`: never the write key.
    public var description: String { "SegmentPipelineService(\(pipeline))" }
}
