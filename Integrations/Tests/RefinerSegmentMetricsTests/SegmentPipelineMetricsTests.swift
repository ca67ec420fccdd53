import Foundation
import Metrics
import MetricsTestKit
import RefinerSegment
import RefinerSegmentMetrics
import RefinerSegmentTesting
import Testing

private func unit(_ index: Int) -> [SegmentMessage] {
    let id = "message-\(index)"
    return [
        SegmentMessage(kind: .identify, messageID: id, json: Array(#"{"type":"identify","messageId":"\#(id)"}"#.utf8))
    ]
}

@Suite struct SegmentPipelineMetricsTests {
    /// Runs a pipeline over `script` with the adapter on `factory`, records `units` units, and shuts down.
    private func measure(
        _ script: [ScriptedTransport.Step],
        units: Int,
        factory: TestMetrics,
        tenant: String? = nil
    ) async throws {
        let metrics = SegmentPipelineMetrics(factory: factory, tenant: tenant)
        var configuration = SegmentPipeline.Configuration()
        configuration.batch = SegmentPipeline.BatchLimits(maximumMessages: 1)  // one batch per unit
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_metrics_secret"), transport: metrics.timing(ScriptedTransport(script)),
            configuration: configuration, jitter: { _ in .zero })
        let outcomes = await pipeline.outcomes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pipeline.run() }
            group.addTask { await metrics.record(outcomes, of: pipeline) }
            for index in 0..<units { try await pipeline.record(unit(index)) }
            await pipeline.flush()
            pipeline.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    @Test func messagesAreCountedByOutcome() async throws {
        let factory = TestMetrics()
        // Unit 0: a 500, retried, then delivered. Unit 1: a 400, failed. Unit 2: delivered.
        try await measure([.status(500), .status(200), .status(400)], units: 3, factory: factory)

        func count(_ outcome: String) throws -> Int64 {
            try factory.expectCounter("refiner_segment_messages", [("outcome", outcome)]).totalValue
        }
        #expect(try count("delivered") == 2)
        #expect(try count("retrying") == 1)
        #expect(try count("failed") == 1)
        #expect(try count("handed_back") == 0)
    }

    @Test func eachBatchRequestIsTimedByStatusClass() async throws {
        let factory = TestMetrics()
        try await measure([.status(500), .status(200), .connectionFailure, .status(200)], units: 2, factory: factory)

        #expect(try factory.expectTimer("refiner_segment_batch_duration", [("status", "2xx")]).values.count == 2)
        #expect(try factory.expectTimer("refiner_segment_batch_duration", [("status", "5xx")]).values.count == 1)
        #expect(try factory.expectTimer("refiner_segment_batch_duration", [("status", "error")]).values.count == 1)
        let durations = try factory.expectTimer("refiner_segment_batch_duration", [("status", "2xx")]).values
        #expect(durations.allSatisfy { $0 >= 0 })
    }

    @Test func gaugesShowTheBacklogWhileSegmentIsStalled() async throws {
        let factory = TestMetrics()
        let metrics = SegmentPipelineMetrics(factory: factory)
        // The first batch never comes back: everything after it waits in the queue.
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_metrics_secret"), transport: ScriptedTransport([.hang]))
        let run = Task { try await pipeline.run() }
        for index in 0..<5 { try await pipeline.record(unit(index)) }
        await metrics.sample(pipeline)
        let counters = await pipeline.counters

        #expect(try factory.expectGauge("refiner_segment_queue_depth").lastValue == 5)
        #expect(try factory.expectGauge("refiner_segment_store_bytes").lastValue == Double(counters.queuedBytes))
        #expect(counters.queuedBytes > 0)

        run.cancel()  // stops at once: everything is handed back
        try await run.value
        await metrics.sample(pipeline)
        #expect(try factory.expectGauge("refiner_segment_queue_depth").lastValue == 0)
    }

    @Test func theTenantDimensionIsOptIn() async throws {
        let untagged = TestMetrics()
        try await measure([.status(200)], units: 1, factory: untagged)
        #expect(untagged.counters.allSatisfy { counter in !counter.dimensions.contains { $0.0 == "tenant" } })

        let tagged = TestMetrics()
        try await measure([.status(200)], units: 1, factory: tagged, tenant: "acme")
        #expect(
            try tagged.expectCounter("refiner_segment_messages", [("outcome", "delivered"), ("tenant", "acme")])
                .totalValue == 1)
        #expect(try tagged.expectGauge("refiner_segment_queue_depth", [("tenant", "acme")]).lastValue == 0)
        #expect(
            try tagged.expectTimer("refiner_segment_batch_duration", [("status", "2xx"), ("tenant", "acme")]).values
                .count == 1)
    }

    @Test func noDimensionHoldsTheWriteKey() async throws {
        let factory = TestMetrics()
        try await measure([.status(400)], units: 1, factory: factory, tenant: "acme")
        let dimensions = factory.counters.flatMap(\.dimensions) + factory.timers.flatMap(\.dimensions)
        #expect(!dimensions.isEmpty)
        #expect(dimensions.allSatisfy { !$0.1.contains("wk_metrics_secret") })
    }
}
