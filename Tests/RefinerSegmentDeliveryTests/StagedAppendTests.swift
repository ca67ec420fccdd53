import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// A store that appends in two steps, whose durability waits until ``open()``: the units of each step are
/// noted as they are written.
final class HeldDurabilityStore: SegmentStagedAppendStore, ForwardingMessageStore {
    let inner = InMemoryMessageStore()
    private let state = Locked((staged: [Int](), waiting: [CheckedContinuation<Void, Never>](), open: false))

    /// The units of each staged append, in the order they were written.
    var staged: [Int] { state.withLock { $0.staged } }
    /// Appends written and waiting to be durable.
    var waiting: Int { state.withLock { $0.waiting.count } }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func stageAppend(_ units: [[SegmentMessage]], tenant: String) async throws -> SegmentStagedAppend {
        state.withLock { $0.staged.append(units.count) }
        return SegmentStagedAppend(accepted: units.count) { [self] in
            await withCheckedContinuation { continuation in
                let go = state.withLock { state -> Bool in
                    guard !state.open else { return true }
                    state.waiting.append(continuation)
                    return false
                }
                if go { continuation.resume() }
            }
            _ = try await inner.append(units, tenant: tenant)
        }
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        let staged = try await stageAppend(units, tenant: tenant)
        try await staged.durable()
        return staged.accepted
    }
}

/// A store that appends in two steps is held by a group append only while it writes (pipelined group
/// commit).
@Suite struct StagedAppendTests {
    private func eventually(_ condition: () async -> Bool) async throws {
        for _ in 0..<1_000_000 {
            if await condition() { return }
            await Task.yield()
        }
        Issue.record("the condition never held")
        throw CancellationError()
    }

    /// While the first group waits to be durable, every later caller's units are written too (no caller
    /// waits for an earlier group's fsync before its own units are written), and none returns before its
    /// units are durable.
    @Test func laterGroupsAreWrittenWhileEarlierOnesWaitToBeDurable() async throws {
        let store = HeldDurabilityStore()
        let pipeline = try SegmentPipeline(writeKey: Harness.writeKey, transport: RecordingTransport(), store: store)
        let pairs = try (0..<12).map { try Messages.pair("r\($0)") }
        let returned = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for pair in pairs {
                group.addTask {
                    try await pipeline.record(pair)
                    returned.withLock { $0 += 1 }
                }
            }
            try await eventually { store.staged.reduce(0, +) == 12 }
            #expect(returned.withLock { $0 } == 0)
            #expect(await pipeline.counters.accepted == 0)
            #expect(try await store.usage(tenant: "default").messages == 0)
            store.open()
            try await group.waitForAll()
        }
        #expect(await pipeline.counters.accepted == 24)
        #expect(try await store.usage(tenant: "default").claimableMessages == 24)
        #expect(pipeline.callersWaitingToAppend == 0)
    }
}
