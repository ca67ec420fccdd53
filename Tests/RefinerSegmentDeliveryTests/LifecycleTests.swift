import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// `run()`, graceful shutdown, cancellation, linger, splitting refused batches, and answers that end a batch.
@Suite struct LifecycleTests {
    @Test func withPipelineDeliversAndShutsDownGracefully() async throws {
        let transport = RecordingTransport()
        let clock = VirtualClock()
        let pairs = try (0..<3).map { try Messages.pair("r\($0)") }
        let counters = try await SegmentPipeline.withPipeline(
            writeKey: Harness.writeKey, transport: transport, clock: clock, wallClock: clock.wallClock
        ) { pipeline in
            try await pipeline.record(contentsOf: pairs)
            await pipeline.flush()
            return await pipeline.counters
        }
        #expect(counters.delivered == 6)
        #expect(await transport.requests.count == 1)
    }

    @Test func gracefulShutdownDrainsWhatIsLeftWithinTheGracePeriod() async throws {
        let harness = try await Harness([.status(500)], mode: .manual) { $0.shutdownGracePeriod = .seconds(30) }
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.clock.waitForSleepers(1)  // the backoff after the 500
        let stopped = Task { await harness.shutDown() }
        await harness.clock.waitForSleepers(2)  // and the grace period
        harness.clock.advance(by: .milliseconds(500))
        #expect(await stopped.value.isEmpty)
        #expect(await harness.pipeline.counters.delivered == 2)
    }

    @Test func cancellingRunStopsAtOnceAndHandsBackTheBatchInFlight() async throws {
        let harness = try await Harness(whenDone: .hang, mode: .manual) { $0.shutdownGracePeriod = .seconds(3600) }
        let pairs = try (0..<2).map { try Messages.pair("r\($0)") }
        try await harness.pipeline.record(contentsOf: pairs)
        while await harness.transport.requests.isEmpty { await Task.yield() }
        harness.running.cancel()
        _ = await harness.running.result
        #expect(await harness.pipeline.handedBackMessages == pairs.flatMap { $0 })
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["handedBack"])
    }

    @Test func runsOnlyOnce() async throws {
        let harness = try await Harness()
        _ = await harness.finish()
        await #expect(throws: SegmentDeliveryError.self) { try await harness.pipeline.run() }
    }

    @Test func lingerWaitsForMoreBeforeSendingAPartialBatch() async throws {
        let harness = try await Harness(mode: .manual) { $0.linger = .milliseconds(20) }
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.clock.waitForSleepers(1)
        #expect(await harness.transport.requests.isEmpty)
        try await harness.pipeline.record(try Messages.pair("r2"))
        harness.clock.advance(by: .milliseconds(20))
        await harness.pipeline.flush()
        #expect(try await harness.batches().map(\.count) == [4])
        _ = await harness.finish()
    }

    @Test func aFullBatchGoesWithoutWaitingForTheLinger() async throws {
        let harness = try await Harness(mode: .manual) {
            $0.linger = .seconds(60)
            $0.batch.maximumMessages = 4
        }
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.clock.waitForSleepers(1)
        try await harness.pipeline.record(try Messages.pair("r2"))
        while await harness.transport.requests.isEmpty { await Task.yield() }
        #expect(try await harness.batches().map(\.count) == [4])
        _ = await harness.finish()
    }

    @Test func flushSendsWithoutWaitingForTheLinger() async throws {
        let harness = try await Harness(mode: .manual) { $0.linger = .seconds(60) }
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        #expect(await harness.pipeline.counters.delivered == 2)
        _ = await harness.finish()
    }

    @Test func aPoisonedPairFailsAloneWhenItsBatchIsRefused() async throws {
        let pairs = try (0..<8).map { try Messages.pair("r\($0)") }
        let poisoned = "refiner-r5-identify"
        let transport = PoisonTransport(poisoned: poisoned)
        let clock = VirtualClock()
        var configuration = SegmentPipeline.Configuration()
        configuration.linger = .zero
        let pipeline = try SegmentPipeline(
            writeKey: Harness.writeKey, transport: transport, configuration: configuration, clock: clock,
            wallClock: clock.wallClock)
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = Task { try await pipeline.run() }
        try await pipeline.record(contentsOf: pairs)
        await pipeline.flush()
        pipeline.triggerGracefulShutdown()
        try await running.value
        var failed: [String] = []
        var delivered: [String] = []
        for await outcome in outcomes {
            if case .failed(let messages, let reason) = outcome {
                failed += messages.map(\.messageID)
                #expect(reason.statusCode == 400)
            }
            if case .delivered(let ids, _) = outcome { delivered += ids }
        }
        #expect(failed == ["refiner-r5-identify", "refiner-r5-group"])
        #expect(Set(delivered) == Set(pairs.flatMap { $0 }.map(\.messageID)).subtracting(failed))
        #expect(await transport.retryCounts.allSatisfy { $0 == "0" }, "a split is not a retry")
        #expect(await pipeline.counters.retries == 0)
    }

    @Test func aPermanentTransportFailureIsNotRetried() async throws {
        let harness = try await Harness([.fail(SegmentTransportError.permanent("certificate not trusted"))])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["failed"])
        #expect(outcomes.first?.reason?.code == .transportFailure)
        #expect(outcomes.first?.reason?.underlying is SegmentTransportError)
        #expect(await harness.transport.requests.count == 1)
        #expect(harness.clock.sleeps.isEmpty)
    }

    @Test(arguments: [301, 302, 307, 308])
    func aRedirectFailsTheBatchForGoodNamingTheLocation(status: Int) async throws {
        let harness = try await Harness([.status(status, headerFields: ["Location": "https://other.example.com/x"])])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["failed"])
        let reason = try #require(outcomes.first?.reason)
        #expect(reason.code == .redirected)
        #expect(reason.description.contains("https://other.example.com/x"))
        #expect(await harness.transport.requests.count == 1)
        #expect(await harness.pipeline.counters.delivered == 0)
    }

    @Test func aPauseIsCheckedAgainAfterItsSleepWhenAnotherBatchMadeItLonger() async throws {
        // Two batches in flight: one answered after 1 s with a 20 s pause, the other at once with a 5 s pause.
        // The second may not go out when its own pause ends, only when the longer one does.
        let harness = try await Harness(
            [
                .delay(.seconds(1), then: .status(429, headerFields: ["Retry-After": "20"])),
                .status(429, headerFields: ["Retry-After": "5"]),
            ], mode: .manual
        ) {
            $0.batch.maximumMessages = 2
            $0.maximumBatchesInFlight = 2
        }
        try await harness.pipeline.record(contentsOf: try (0..<2).map { try Messages.pair("r\($0)") })
        await harness.clock.waitForSleepers(2)  // the first answer's delay, the second's pause
        harness.clock.advance(by: .seconds(1))
        await harness.clock.waitForSleepers(2)  // both paused
        harness.clock.advance(by: .seconds(4))  // the first pause is over, the second is not
        await harness.clock.waitForSleepers(2)
        #expect(await harness.transport.requests.count == 2)
        harness.clock.advance(by: .seconds(16))
        await harness.pipeline.flush()
        _ = await harness.finish()
        let sentAt = try await harness.bodies().compactMap { $0["sentAt"] as? String }
        #expect(
            sentAt == [
                "2026-11-25T10:00:00.000Z", "2026-11-25T10:00:00.000Z", "2026-11-25T10:00:21.000Z",
                "2026-11-25T10:00:21.000Z",
            ])
    }
}

/// Answers 400 to any batch holding the poisoned message, 200 otherwise.
actor PoisonTransport: SegmentTransport {
    let poisoned: String
    private(set) var retryCounts: [String?] = []

    init(poisoned: String) { self.poisoned = poisoned }

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        retryCounts.append(request.headerField("X-Retry-Count"))
        let body = String(decoding: request.body, as: UTF8.self)
        return SegmentResponse(statusCode: body.contains("\"\(poisoned)\"") ? 400 : 200)
    }
}
