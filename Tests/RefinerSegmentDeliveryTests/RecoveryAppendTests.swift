import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// A store behind the protocol whose `recover` waits until ``open()``, and whose appends, once their units
/// are in, wait until ``releaseAppends()`` before they return.
final class HeldRecoveryStore: SegmentMessageStore, ForwardingMessageStore {
    let inner = InMemoryMessageStore()
    private struct State {
        var called = false
        var open = false
        var recovery: CheckedContinuation<Void, Never>?
        var inserted = false
        var released = false
        var appends: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    /// Whether `recover` was called.
    var recoverCalled: Bool { state.withLock { $0.called } }
    /// Whether an append's units are in the store.
    var inserted: Bool { state.withLock { $0.inserted } }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.recovery = nil }
            return state.recovery
        }
        waiting?.resume()
    }

    func releaseAppends() {
        let waiting = state.withLock { state in
            state.released = true
            defer { state.appends = [] }
            return state.appends
        }
        for continuation in waiting { continuation.resume() }
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        let taken = try await inner.append(units, tenant: tenant)
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                state.inserted = true
                guard !state.released else { return true }
                state.appends.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
        return taken
    }

    func recover(tenant: String) async throws -> SegmentStoreRecovery {
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                state.called = true
                guard !state.open else { return true }
                state.recovery = continuation
                return false
            }
            if go { continuation.resume() }
        }
        return try await inner.recover(tenant: tenant)
    }
}

/// `record` while `run()` recovers a store that is not in memory.
@Suite struct RecoveryAppendTests {
    @Test func aRecordWhileThePipelineRecoversIsCountedOnceSoAFlushAfterItReturns() async throws {
        // Before, the unit could reach the store while it counted what it held, and be counted by the
        // recovery and by its `record`: the pipeline then waited for messages that do not exist (a flush
        // that never returned, seen in CI with the PostgreSQL outbox).
        let store = HeldRecoveryStore()
        let transport = RecordingTransport()
        let pair = try Messages.pair("r1")
        try await SegmentPipeline.withPipeline(writeKey: Harness.writeKey, transport: transport, store: store) {
            pipeline in
            for _ in 0..<1_000_000 where !store.recoverCalled { await Task.yield() }
            try #require(store.recoverCalled, "run() did not recover")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await pipeline.record(pair) }
                // Time for the record to reach the store, were it let through while the store recovers.
                for _ in 0..<10_000 where !store.inserted { await Task.yield() }
                store.open()
                // Time for the pipeline to count what the recovery found, before the append is counted.
                for _ in 0..<10_000 { await Task.yield() }
                store.releaseAppends()
                try await group.waitForAll()
            }
            for _ in 0..<1_000_000 where await pipeline.counters.delivered < 2 { await Task.yield() }
            let counters = await pipeline.counters
            #expect(counters.delivered == 2)
            #expect(counters.accepted == 2)
            try #require(counters.queuedMessages == 0, "the unit was counted twice")
            await pipeline.flush()
        }
        #expect(await transport.requests.count == 1)
    }
}
