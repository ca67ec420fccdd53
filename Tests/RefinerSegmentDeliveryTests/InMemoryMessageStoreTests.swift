import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// The in-memory store through the protocol, as the pipeline and other stores' tests use it.
@Suite struct InMemoryMessageStoreTests {
    private func unit(_ id: String, size: Int = 100) -> [SegmentMessage] {
        [Messages.sized("\(id)-i", size: size), Messages.sized("\(id)-g", size: size)]
    }

    @Test func aFullStoreAcceptsAPrefixOfTheUnits() async throws {
        let store = InMemoryMessageStore(limits: .init(maximumMessages: 4))
        let accepted = try await store.append([unit("a"), unit("b"), unit("c")], tenant: "default")
        #expect(accepted == 2)
        #expect(try await store.usage(tenant: "default").claimableMessages == 4)
    }

    @Test func claimsComeFromTheFrontWithWholeUnits() async throws {
        let store = InMemoryMessageStore()
        _ = try await store.append([unit("a"), unit("b"), unit("c")], tenant: "default")
        let first = try #require(
            try await store.claim(tenant: "default", maximumMessages: 5, maximumBytes: 1 << 20, lease: .seconds(1)))
        #expect(first.messages.map(\.messageID) == ["a-i", "a-g", "b-i", "b-g"])
        #expect(first.unitEnds == [2, 4])
        let second = try #require(
            try await store.claim(tenant: "default", maximumMessages: 5, maximumBytes: 1 << 20, lease: .seconds(1)))
        #expect(second.messages.map(\.messageID) == ["c-i", "c-g"])
        #expect(
            try await store.claim(tenant: "default", maximumMessages: 5, maximumBytes: 1 << 20, lease: .zero) == nil)
    }

    @Test func releasedClaimsComeBackFirstInAcceptedOrderWithoutWhatWasSettled() async throws {
        let store = InMemoryMessageStore()
        _ = try await store.append([unit("a"), unit("b"), unit("c")], tenant: "default")
        let first = try #require(
            try await store.claim(tenant: "default", maximumMessages: 4, maximumBytes: 1 << 20, lease: .zero))
        let second = try #require(
            try await store.claim(tenant: "default", maximumMessages: 4, maximumBytes: 1 << 20, lease: .zero))
        try await store.settle(first, messages: 0..<2, as: .delivered)
        try await store.release(second)
        try await store.release(first)
        let back = try await store.handBack(tenant: "default")
        #expect(back.map(\.messageID) == ["b-i", "b-g", "c-i", "c-g"])
        #expect(try await store.usage(tenant: "default").messages == 0)
    }

    @Test func tenantsAreApart() async throws {
        let store = InMemoryMessageStore(limits: .init(maximumMessages: 2))
        #expect(try await store.append([unit("a")], tenant: "one") == 1)
        #expect(try await store.append([unit("b")], tenant: "two") == 1, "one tenant's full queue blocks no other")
        try await store.setPause(until: Date(timeIntervalSince1970: 10), tenant: "one")
        #expect(try await store.usage(tenant: "two").pausedUntil == nil)
        #expect(try await store.handBack(tenant: "one").map(\.messageID) == ["a-i", "a-g"])
        #expect(try await store.usage(tenant: "two").claimableMessages == 2)
    }

    @Test func aPipelineOnAGivenStoreLeavesWhatItHoldsThere() async throws {
        // Recorded before run(): run() is cancelled at once, so the store's messages are handed back.
        let store = InMemoryMessageStore()
        let pipeline = try SegmentPipeline(
            writeKey: Harness.writeKey, transport: RecordingTransport(), store: store, tenant: "acme")
        try await pipeline.record(unit("a"))
        #expect(try await store.usage(tenant: "acme").claimableMessages == 2)
        let running = Task { try await pipeline.run() }
        running.cancel()
        _ = await running.result
        #expect(await pipeline.counters.delivered + pipeline.handedBackMessages.count == 2)
    }
}

/// A store behind the protocol (not the in-memory fast path) whose first claims fail, as a durable store's
/// may when its disk or its database is away for a moment.
final class FlakyStore: SegmentMessageStore, ForwardingMessageStore {
    let inner = InMemoryMessageStore()
    private let failures = Locked(2)

    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        let fail = failures.withLock { left -> Bool in
            left -= 1
            return left >= 0
        }
        if fail { throw CocoaError(.fileReadUnknown) }
        return try await inner.claim(
            tenant: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
    }
}

/// A value behind a lock, for the test doubles here.
final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `withLock`, which holds `lock`.
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

@Suite struct StoreFailureTests {
    @Test func aStoreThatFailsForAMomentDelaysSendingAndLosesNothing() async throws {
        let clock = VirtualClock()
        let store = FlakyStore()
        let pairs = try (0..<3).map { try Messages.pair("r\($0)") }
        let counters = try await SegmentPipeline.withPipeline(
            writeKey: Harness.writeKey, transport: RecordingTransport(), store: store, clock: clock,
            wallClock: clock.wallClock
        ) { pipeline in
            try await pipeline.record(contentsOf: pairs)
            await pipeline.flush()
            return await pipeline.counters
        }
        #expect(counters.delivered == 6)
        #expect(clock.sleeps.filter { $0 == .seconds(1) }.count == 2, "a second after each failure")
    }
}
