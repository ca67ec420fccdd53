import RefinerSegment
import RefinerWebhookIntake
import ServiceLifecycle

/// The pipeline's ``PipelineReport`` as a service beside the pipeline.
///
/// Its report ends once the pipeline has shut down (its outcome stream ends); the service then waits for
/// its own turn to stop, since a service that returns before it fails the group.
struct PipelineReporter: Service {
    var report: PipelineReport
    var pipeline: SegmentPipeline
    /// Subscribed to before the server starts, so that none is missed.
    var outcomes: AsyncStream<SegmentOutcome>

    func run() async {
        await report.run(outcomes, of: pipeline)
        try? await gracefulShutdown()
    }
}
