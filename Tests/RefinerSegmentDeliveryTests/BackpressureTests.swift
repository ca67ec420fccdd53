import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@Suite struct BackpressureTests {
    /// Yields until the condition holds; a bound turns a hang into a failure.
    private func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<100_000 {
            if await condition() { return true }
            await Task.yield()
        }
        return false
    }

    @Test func recordingMoreThanFitsWaitsAndShutdownHandsEverythingBack() async throws {
        // The transport never answers; the queue holds 4 messages (two pairs) besides the batch in flight.
        let harness = try await Harness(whenDone: .hang, mode: .manual) {
            $0.queue.maximumMessages = 4
            $0.batch.maximumMessages = 2
            $0.shutdownGracePeriod = .seconds(5)
        }
        let pairs = try (0..<6).map { try Messages.pair("r\($0)") }
        for pair in pairs.prefix(3) { try await harness.pipeline.record(pair) }
        #expect(await eventually { await harness.transport.requests.count == 1 })

        let pipeline = harness.pipeline
        let late = Task { () -> SegmentDeliveryError? in
            do {
                for pair in pairs.dropFirst(3) { try await pipeline.record(pair) }
                return nil
            } catch {
                return error as? SegmentDeliveryError
            }
        }
        #expect(await eventually { await pipeline.counters.waitingToRecord == 1 })
        let counters = await pipeline.counters
        #expect(counters.queuedMessages == 4)
        #expect(counters.inFlightMessages == 2)
        #expect(counters.accepted == 6)

        let shutdown = Task { await harness.shutDown() }
        await harness.clock.waitForSleepers(1)  // the grace period
        #expect(await late.value?.code == .shutDown)
        harness.clock.advance(by: .seconds(5))
        let handedBack = await shutdown.value
        #expect(handedBack == pairs.prefix(3).flatMap { $0 }, "the batch in flight first, then the rest, in order")
        let outcomes = await harness.finish()
        #expect(outcomes.allSatisfy { $0.name == "handedBack" })
        #expect(outcomes.flatMap(\.messages).count == 6)
        #expect(await pipeline.counters.handedBack == 6)
    }

    @Test func shutdownInterruptsARetryWaitAtTheDeadline() async throws {
        let harness = try await Harness(whenDone: .status(500), mode: .manual) {
            $0.shutdownGracePeriod = .seconds(10)
        }
        let pair = try Messages.pair("r1")
        try await harness.pipeline.record(pair)
        await harness.clock.waitForSleepers(1)  // the first backoff
        let shutdown = Task { await harness.shutDown() }
        await harness.clock.waitForSleepers(2)  // and the grace period
        harness.clock.advance(by: .milliseconds(400))  // not yet the retry
        #expect(harness.clock.pendingSleepers == 2)
        harness.clock.advance(by: .seconds(10))
        #expect(await shutdown.value == pair)
        let outcomes = await harness.finish()
        #expect(outcomes.last?.name == "handedBack")
        #expect(outcomes.dropLast().allSatisfy { $0.name == "retrying" })
    }

    @Test func shutdownBeforeTheDeadlineDeliversEverything() async throws {
        let harness = try await Harness([.status(500)], mode: .manual) { $0.shutdownGracePeriod = .seconds(60) }
        let pairs = try (0..<3).map { try Messages.pair("r\($0)") }
        for pair in pairs { try await harness.pipeline.record(pair) }
        await harness.clock.waitForSleepers(1)  // the backoff after the 500
        let pipeline = harness.pipeline
        let shutdown = Task { await harness.shutDown() }
        await harness.clock.waitForSleepers(2)
        harness.clock.advance(by: .milliseconds(500))
        #expect(await shutdown.value == [])
        #expect(await pipeline.counters.delivered == 6)
        #expect(harness.clock.pendingSleepers == 0)  // the grace timer was cancelled
    }

    @Test func failFastThrowsWhenFull() async throws {
        let harness = try await Harness(whenDone: .hang, mode: .manual) {
            $0.queue = .init(maximumMessages: 2, maximumBytes: 1 << 20, whenFull: .fail)
            $0.batch.maximumMessages = 2
        }
        try await harness.pipeline.record(try Messages.pair("r0"))
        #expect(await eventually { await harness.transport.requests.count == 1 })
        try await harness.pipeline.record(try Messages.pair("r1"))
        let third = try Messages.pair("r2")
        do {
            try await harness.pipeline.record(third)
            Issue.record("a full queue accepted more")
        } catch let error as SegmentDeliveryError {
            #expect(error.code == .queueFull)
        }
        #expect(await harness.pipeline.counters.accepted == 4)
        #expect(await harness.shutDown().count == 4)
    }

    @Test func theQueueBoundsBytesToo() async throws {
        let harness = try await Harness(whenDone: .hang, mode: .manual) {
            $0.queue = .init(maximumMessages: 1000, maximumBytes: 250, whenFull: .fail)
            $0.batch.maximumMessages = 1
        }
        try await harness.pipeline.record([Messages.sized("a", size: 100)])
        #expect(await eventually { await harness.transport.requests.count == 1 })
        try await harness.pipeline.record([Messages.sized("b", size: 100)])
        try await harness.pipeline.record([Messages.sized("c", size: 100)])
        await #expect(throws: SegmentDeliveryError.self) {
            try await harness.pipeline.record([Messages.sized("d", size: 100)])
        }
        #expect(await harness.pipeline.counters.queuedBytes == 200)
        await harness.shutDown()
    }

    @Test func aCancelledWaitingRecordAcceptsNothing() async throws {
        let harness = try await Harness(whenDone: .hang, mode: .manual) {
            $0.queue.maximumMessages = 2
            $0.batch.maximumMessages = 2
        }
        try await harness.pipeline.record(try Messages.pair("r0"))
        #expect(await eventually { await harness.transport.requests.count == 1 })
        try await harness.pipeline.record(try Messages.pair("r1"))
        let pipeline = harness.pipeline
        let waiting = Task { () -> SegmentDeliveryError? in
            do {
                try await pipeline.record(try Messages.pair("r2"))
                return nil
            } catch let error as SegmentDeliveryError {
                return error
            } catch {
                return nil
            }
        }
        #expect(await eventually { await pipeline.counters.waitingToRecord == 1 })
        waiting.cancel()
        #expect(await waiting.value?.code == .cancelled)
        #expect(await pipeline.counters.accepted == 4)
        #expect(await pipeline.counters.waitingToRecord == 0)
        await harness.shutDown()
    }

    @Test func waitingRecordsGetInWhenABatchLeavesTheQueue() async throws {
        let harness = try await Harness { $0.queue.maximumMessages = 2 }
        let pairs = try (0..<50).map { try Messages.pair("r\($0)") }
        for pair in pairs { try await harness.pipeline.record(pair) }
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.flatMap(\.messages) == pairs.flatMap { $0.map(\.messageID) })
        #expect(try await harness.batches().allSatisfy { $0.count <= 2 })
    }

    @Test func recordAfterShutdownIsRefused() async throws {
        let harness = try await Harness()
        harness.pipeline.triggerGracefulShutdown()
        let pair = try Messages.pair("r1")
        do {
            try await harness.pipeline.record(pair)
            Issue.record("a shutting-down pipeline accepted messages")
        } catch let error as SegmentDeliveryError {
            #expect(error.code == .shutDown)
        }
        await harness.shutDown()
        await #expect(throws: SegmentDeliveryError.self) { try await harness.pipeline.record(pair) }
    }

    @Test func flushWaitsOnlyForWhatCameBefore() async throws {
        let harness = try await Harness([.status(500)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        #expect(await harness.pipeline.counters.delivered == 2)
        await harness.pipeline.flush()  // nothing pending: returns at once
        _ = await harness.finish()
    }

    @Test func twoBatchesMayBeInFlightWhenConfigured() async throws {
        let harness = try await Harness(whenDone: .hang, mode: .manual) {
            $0.maximumBatchesInFlight = 2
            $0.batch.maximumMessages = 2
        }
        try await harness.pipeline.record(contentsOf: try (0..<3).map { try Messages.pair("r\($0)") })
        #expect(await eventually { await harness.transport.requests.count == 2 })
        #expect(await harness.pipeline.counters.inFlightMessages == 4)
        #expect(await harness.shutDown().count == 6)
    }
}
