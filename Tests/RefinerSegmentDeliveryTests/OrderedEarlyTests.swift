import Foundation
import RefinerSegmentTesting
import Testing

@testable import RefinerSegment

/// A store that appends in two steps and takes at most `capacity` units in all; its first write waits until
/// ``open()``, so that callers gather behind it.
final class BoundedStagedStore: SegmentStagedAppendStore, ForwardingMessageStore {
    let inner = InMemoryMessageStore()
    private let state: Locked<(capacity: Int, taken: Int, open: Bool, waiting: CheckedContinuation<Void, Never>?)>

    init(capacity: Int) { state = Locked((capacity, 0, false, nil)) }

    /// Whether the gate holds a write now.
    var isHoldingAWrite: Bool { state.withLock { $0.waiting != nil } }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume()
    }

    func stageAppend(_ units: [[SegmentMessage]], tenant: String) async throws -> SegmentStagedAppend {
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                guard !state.open else { return true }
                state.waiting = continuation
                return false
            }
            if go { continuation.resume() }
        }
        let accepted = state.withLock { state in
            let accepted = min(units.count, state.capacity - state.taken)
            state.taken += accepted
            return accepted
        }
        let taken = Array(units.prefix(accepted))
        return SegmentStagedAppend(accepted: accepted) { [inner] in
            _ = try await inner.append(taken, tenant: tenant)
        }
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        let staged = try await stageAppend(units, tenant: tenant)
        try await staged.durable()
        return staged.accepted
    }
}

/// `record(_:whenOrdered:)` and ``ProfileRecordingOrder/Records``: what lets the next response of an account
/// go on before the last one's messages are durable, and only when their order is fixed.
@Suite struct OrderedEarlyTests {
    /// Three callers of one staged group append, the store taking two units: the leader's and the first
    /// follower's units are written whole, so both are told their order is fixed; the last follower's unit
    /// is not taken, so it is not told (it goes the way of the actor, and here fails: the queue is full).
    @Test func aCallerTheStoreDidNotTakeWholeIsNotOrderedEarly() async throws {
        let store = BoundedStagedStore(capacity: 2)
        let pipeline = try SegmentPipeline(
            writeKey: Harness.writeKey, transport: RecordingTransport(),
            configuration: .init(queue: .init(whenFull: .fail)), store: store)
        let ordered = Locked<[String]>([])
        func record(_ id: String) async throws {
            try await pipeline.record(try Messages.pair(id), whenOrdered: { ordered.withLock { $0.append(id) } })
        }
        let leader = Task { try await record("r0") }
        while !store.isHoldingAWrite { await Task.yield() }
        let first = Task { try await record("r1") }
        while pipeline.callersWaitingToAppend < 1 { await Task.yield() }
        let second = Task {
            do {
                try await record("r2")
                return SegmentDeliveryError.Code?.none
            } catch let error as SegmentDeliveryError {
                return error.code
            }
        }
        while pipeline.callersWaitingToAppend < 2 { await Task.yield() }
        #expect(ordered.withLock { $0 }.isEmpty, "nothing is written yet")
        store.open()
        try await leader.value
        try await first.value
        #expect(try await second.value == .queueFull)
        #expect(ordered.withLock { $0 } == ["r0", "r1"])
    }

    /// Released records go to the next caller before the body returns; the release when the body returns
    /// is then a no-op, and does not take the records from that next caller.
    @Test func releasedRecordsGoToTheNextCallerAndAreReleasedOnce() async throws {
        let order = ProfileRecordingOrder()
        let keys: [ProfileKey] = [.account("X"), .user("1")]
        let (gate, opening) = AsyncStream<Void>.makeStream()
        let next = try await order.withRecords(keys) { records in
            records.release()
            records.release()
            #expect(order.heldCount == 0)
            let next = Task {
                try await order.withRecords([.account("X")]) {
                    for await _ in gate { break }
                }
            }
            while order.heldCount == 0 { await Task.yield() }
            return next
        }
        #expect(order.heldCount == 1, "the next caller still holds the account")
        opening.yield()
        opening.finish()
        try await next.value
        #expect(order.heldCount == 0)
    }
}
