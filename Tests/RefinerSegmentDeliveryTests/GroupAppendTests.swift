import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// A store behind the protocol whose first `held` appends wait until ``open()``, and which notes how many
/// units each append brought.
final class GatedStore: SegmentMessageStore, ForwardingMessageStore {
    let inner: InMemoryMessageStore
    private let state = Locked((held: 0, waiting: [CheckedContinuation<Void, Never>](), open: false, appends: [Int]()))

    init(held: Int, limits: SegmentPipeline.QueueLimits = .init()) {
        inner = InMemoryMessageStore(limits: limits)
        state.withLock { $0.held = held }
    }

    /// The units of each append, in the order they came.
    var appends: [Int] { state.withLock { $0.appends } }
    /// Appends waiting for ``open()``.
    var held: Int { state.withLock { $0.waiting.count } }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        await withCheckedContinuation { continuation in
            let go = state.withLock { state -> Bool in
                state.appends.append(units.count)
                guard !state.open, state.held > 0 else { return true }
                state.held -= 1
                state.waiting.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
        return try await inner.append(units, tenant: tenant)
    }
}

/// Concurrent `record` callers of a store that is not in memory share appends (group append).
@Suite struct GroupAppendTests {
    /// Waits (yielding, no clock) until `condition` holds.
    private func eventually(_ condition: () async -> Bool) async throws {
        for _ in 0..<1_000_000 {
            if await condition() { return }
            await Task.yield()
        }
        Issue.record("the condition never held")
        throw CancellationError()
    }

    @Test func callersThatComeWhileTwoAppendsAreUnderWayShareTheNext() async throws {
        let store = GatedStore(held: 2)
        let pipeline = try SegmentPipeline(writeKey: Harness.writeKey, transport: RecordingTransport(), store: store)
        let pairs = try (0..<12).map { try Messages.pair("r\($0)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pipeline.record(pairs[0]) }
            group.addTask { try await pipeline.record(pairs[1]) }
            try await eventually { store.held == 2 }
            for pair in pairs[2...] { group.addTask { try await pipeline.record(pair) } }
            try await eventually { pipeline.callersWaitingToAppend == 10 }
            store.open()
            try await group.waitForAll()
        }
        #expect(store.appends == [1, 1, 10])
        #expect(await pipeline.counters.accepted == 24)
        let held = try await store.usage(tenant: "default").claimableMessages
        #expect(held == 24)
        #expect(pipeline.callersWaitingToAppend == 0)
    }

    @Test func aCallerOfAGroupReturnsOnlyOnceItsMessagesAreCountedSoAFlushAfterItCoversThem() async throws {
        // The callers that join a group wait for it off the actor; the one that leads counts the whole group
        // before any of them returns, so each caller's flush finds its own messages sent.
        let store = GatedStore(held: 2)
        let transport = RecordingTransport()
        let pairs = try (0..<12).map { try Messages.pair("r\($0)") }
        try await SegmentPipeline.withPipeline(writeKey: Harness.writeKey, transport: transport, store: store) {
            pipeline in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for pair in pairs {
                    group.addTask {
                        try await pipeline.record(pair)
                        await pipeline.flush()
                        let sent = await transport.requests.map { String(decoding: $0.body, as: UTF8.self) }
                        for message in pair {
                            #expect(sent.contains { $0.contains(message.messageID) }, "\(message.messageID)")
                        }
                    }
                }
                try await eventually { store.held == 2 && pipeline.callersWaitingToAppend == 10 }
                store.open()
                try await group.waitForAll()
            }
        }
        #expect(store.appends == [1, 1, 10])
    }

    @Test func aStoreThatTakesPartOfAGroupTakesWholeCallersAndTheRestAreRefused() async throws {
        // Room for 5 pairs: the two held appends take one each, the group of 6 gets 3 in.
        let store = GatedStore(held: 2, limits: .init(maximumMessages: 10))
        var configuration = SegmentPipeline.Configuration()
        configuration.queue.whenFull = .fail
        let pipeline = try SegmentPipeline(
            writeKey: Harness.writeKey, transport: RecordingTransport(), configuration: configuration, store: store)
        let pairs = try (0..<8).map { try Messages.pair("r\($0)") }
        let refused = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await pipeline.record(pairs[0])
                return false
            }
            group.addTask {
                try await pipeline.record(pairs[1])
                return false
            }
            try await eventually { store.held == 2 }
            for pair in pairs[2...] {
                group.addTask {
                    do {
                        try await pipeline.record(pair)
                        return false
                    } catch let error as SegmentDeliveryError where error.code == .queueFull {
                        return true
                    }
                }
            }
            try await eventually { pipeline.callersWaitingToAppend == 6 }
            store.open()
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(refused == 3)
        #expect(await pipeline.counters.accepted == 10)
        #expect(try await store.usage(tenant: "default").claimableMessages == 10)
    }

    @Test func aFailedAppendFailsEveryCallerOfItsGroupAndTheNextGroupGoesOn() async throws {
        let store = FailingOnceStore()
        let pipeline = try SegmentPipeline(writeKey: Harness.writeKey, transport: RecordingTransport(), store: store)
        let pairs = try (0..<20).map { try Messages.pair("r\($0)") }
        let failed = await withTaskGroup(of: Bool.self) { group in
            for pair in pairs {
                group.addTask {
                    do {
                        try await pipeline.record(pair)
                        return false
                    } catch {
                        return (error as? SegmentDeliveryError)?.code == .storeFailure
                    }
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        // Whatever the groups were, the callers that failed are exactly those whose units the store refused.
        let accepted = await pipeline.counters.accepted
        #expect(failed == store.refusedUnits)
        #expect(failed >= 1)
        #expect(accepted == (20 - failed) * 2)
        #expect(try await store.usage(tenant: "default").claimableMessages == accepted)
    }
}

/// A store whose first append throws.
final class FailingOnceStore: SegmentMessageStore, ForwardingMessageStore {
    let inner = InMemoryMessageStore()
    private let refused = Locked(-1)

    var refusedUnits: Int { refused.withLock { $0 } }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        let fail = refused.withLock { refused -> Bool in
            guard refused < 0 else { return false }
            refused = units.count
            return true
        }
        if fail { throw CocoaError(.fileWriteOutOfSpace) }
        return try await inner.append(units, tenant: tenant)
    }
}
