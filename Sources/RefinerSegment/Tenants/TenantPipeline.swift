#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One open tenant of a ``SegmentPipelineGroup``: its own ``SegmentPipeline`` (queue, bounds, retry state,
/// pause) made with the tenant's id, on the shared store (through its ``TenantStore``) and behind the shared
/// gate; its own call builder (and so its own bounded survey-key cache); and the stream of its pipeline's
/// outcomes.
///
/// The group's one contact with the pipeline's lifecycle API (how a pipeline is made, stopped and
/// drained), so that a change of that API changes this file only.
struct TenantPipeline: Sendable {
    let id: String
    let pipeline: SegmentPipeline
    let builder: SegmentCallBuilder
    let outcomes: AsyncStream<SegmentOutcome>
    let whenFull: SegmentPipeline.FullQueuePolicy
    private let batchLimits: SegmentPipeline.BatchLimits
    private let envelopeBytes: Int

    /// Makes the tenant's pipeline on the gated transport and subscribes to its outcomes.
    init(
        id: String,
        configuration: SegmentPipelineGroup.TenantConfiguration,
        transport: any SegmentTransport,
        gate: SendGate,
        store: TenantStore,
        gracePeriod: Duration,
        clock: any Clock<Duration>,
        wallClock: @escaping @Sendable () -> Date,
        jitter: @escaping @Sendable (Duration) -> Duration
    ) async throws(SegmentTenantError) {
        func invalid(_ detail: String, _ error: SegmentDeliveryError? = nil) -> SegmentTenantError {
            SegmentTenantError(code: .invalidConfiguration, tenant: id, deliveryError: error, detail: detail)
        }
        guard configuration.weight >= 1 else { throw invalid("the weight must be at least 1") }
        let gated = GatedTransport(tenant: id, gate: gate, transport: transport, retry: configuration.pipeline.retry)
        // The group's grace period is every tenant's: a shutdown of the group ends within it.
        var settings = configuration.pipeline
        settings.shutdownGracePeriod = gracePeriod
        do {
            pipeline = try SegmentPipeline(
                writeKey: configuration.writeKey, transport: gated, configuration: settings, store: store,
                tenant: id, clock: clock, wallClock: wallClock, jitter: jitter)
        } catch {
            throw invalid("the tenant's pipeline cannot be made", error)
        }
        do {
            builder = try SegmentCallBuilder(configuration: configuration.builder)
        } catch {
            throw invalid("the tenant's call builder cannot be made: \(error)")
        }
        self.id = id
        self.whenFull = configuration.pipeline.queue.whenFull
        self.batchLimits = configuration.pipeline.batch
        self.envelopeBytes = SegmentBatch.envelopeBytes(writeKey: configuration.writeKey)
        // Unbounded: the group frees room under its byte bound as outcomes come, so none may be dropped.
        self.outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        gate.register(
            id, weight: configuration.weight, maximumInFlight: configuration.pipeline.maximumBatchesInFlight)
    }

    /// Whether the pipeline's size checks pass for a unit (every message within the message limit, the unit
    /// within one batch), so that recording it can only fail for a full queue, a shutdown or a
    /// cancellation.
    func fitsOneBatch(_ unit: [SegmentMessage], bytes: Int) -> Bool {
        guard unit.count <= batchLimits.maximumMessages,
            envelopeBytes + bytes + unit.count - 1 <= batchLimits.maximumBytes
        else { return false }
        return unit.allSatisfy { $0.byteCount <= batchLimits.maximumMessageBytes }
    }

    /// Runs the pipeline (its sending) until it has drained or is cancelled. A store that cannot recover
    /// the tenant leaves its messages where they are; the tenant sends nothing this run.
    func run() async {
        try? await pipeline.run()
    }

    /// Stops accepting and drains within the pipeline's grace period; ``run()`` returns after.
    func drain() {
        pipeline.triggerGracefulShutdown()
    }

    /// What the pipeline handed back when its run was cancelled or its grace period passed.
    func handedBack() async -> [SegmentMessage] {
        await pipeline.handedBackMessages
    }
}
