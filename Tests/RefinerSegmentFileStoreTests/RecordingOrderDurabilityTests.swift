import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@testable import RefinerSegmentFileStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response gives up its profile records once its messages are written to a durable store, before its
/// `fsync`: the next response of the same account goes on meanwhile, and is still sent after it, since the
/// file store makes units claimable in the order they were written.
@Suite struct RecordingOrderDurabilityTests {
    private static func directory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    }

    private static func unit(_ id: String) throws -> [SegmentMessage] {
        [try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u"}"#.utf8))]
    }

    private static func response(_ id: String, user: String, account: String) -> SurveyResponse {
        SurveyResponse(
            id: id, completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: user), account: Account(id: account),
            answers: [Answer(question: Question(id: "q", text: "Industry?", attribution: .account), value: "retail")])
    }

    /// Response B of the same account is recorded while response A waits for its `fsync`: B's profile is
    /// applied and its messages are written to the store (its append waits for a pass beside A's) before
    /// that `fsync` ends, and once it ends A's calls are sent before B's.
    ///
    /// Failed before the records were released early: B waited in `withRecords` for A's whole `record`, the
    /// `fsync` included, so one account's webhooks were recorded one `fsync` apart.
    @Test func aSecondResponseOfTheAccountIsWrittenWhileTheFirstWaitsForItsFsync() async throws {
        let path = Self.directory("order-early")
        defer { try? FileManager.default.removeItem(at: path) }
        let held = HeldSync()
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { held.sync($0) })
        let profiles = CountingProfileStore(base: MemoryProfileStore())
        let transport = RecordingTransport()
        let builder = try SegmentCallBuilder()
        try await SegmentPipeline.withPipeline(writeKey: WriteKey("wk"), transport: transport, store: store) {
            pipeline in
            let first = Task {
                try await pipeline.record(
                    Self.response("A", user: "1", account: "X"), profiles: profiles, builder: builder)
            }
            while store.appendsWaitingForSync < 1 { await Task.yield() }
            #expect(profiles.applies == 1)
            let second = Task {
                try await pipeline.record(
                    Self.response("B", user: "2", account: "X"), profiles: profiles, builder: builder)
            }
            // Bounded: without a release before the fsync, B never gets this far while the fsync is held.
            for _ in 0..<100_000 where store.appendsWaitingForSync < 2 { await Task.yield() }
            #expect(profiles.applies == 2, "B's profile apply happened while A's fsync was held")
            #expect(store.appendsWaitingForSync == 2, "B's append waits for a pass beside A's")
            #expect(held.count >= 1, "A's pass is still held")
            held.openGate()
            let recordedFirst = try await first.value
            let recordedSecond = try await second.value
            #expect(recordedFirst.count == 2)
            #expect(recordedSecond.count == 2)
            await pipeline.flush()
        }
        var sent: [String] = []
        for request in await transport.requests {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            for message in try #require(body["batch"] as? [[String: Any]]) {
                sent.append(try #require(message["messageId"] as? String))
            }
        }
        #expect(sent == ["refiner-A-identify", "refiner-A-group", "refiner-B-identify", "refiner-B-group"])
        #expect(profiles.base.recordingOrder.heldCount == 0)
    }

    /// Two appends written one after the other, the later one's wait for durability returning first (as
    /// two tasks resumed by one `fsync` pass may run): the later unit is not claimable while the earlier one
    /// is not, or a worker could send it first; it becomes claimable, and its wait returns, once the earlier
    /// one's does.
    ///
    /// Failed before the store settled appends in write order: each indexed its own units when its own wait
    /// returned, so the claim handed out the later unit alone.
    @Test func aUnitWrittenLaterIsNotClaimableBeforeOneWrittenEarlier() async throws {
        let path = Self.directory("index-order")
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { _ in 0 })
        let earlier = try await store.stageAppend([try Self.unit("earlier")], tenant: "default")
        let later = try await store.stageAppend([try Self.unit("later")], tenant: "default")
        #expect(earlier.accepted == 1)
        #expect(later.accepted == 1)
        let laterReturned = Locked(false)
        let laterDurable = Task {
            try await later.durable()
            laterReturned.withLock { $0 = true }
        }
        // Until the later wait has returned from its fsync: it has indexed its unit or waits for the earlier.
        for _ in 0..<100_000 {
            if await store.appendsWaitingForEarlierOnes == 1 { break }
            if try await store.usage(tenant: "default").messages > 0 { break }
            await Task.yield()
        }
        let claim = try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero)
        #expect(claim == nil, "claimed \(claim?.messages.map(\.messageID) ?? []) before the earlier unit")
        #expect(!laterReturned.withLock { $0 }, "the later wait returned before the earlier unit was claimable")
        try await earlier.durable()
        try await laterDurable.value
        let both = try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero)
        #expect(both?.messages.map(\.messageID) == ["earlier", "later"])
    }

    /// The earlier append's `fsync` fails while the later one's succeeds: the earlier is undone (never
    /// claimable), the later is indexed after it, and the store is not stuck.
    @Test func aLaterUnitIsClaimableOnceTheEarlierOneFailed() async throws {
        let path = Self.directory("index-order-failed")
        defer { try? FileManager.default.removeItem(at: path) }
        let failing = Locked(true)
        let store = try FileMessageStore(
            directory: path, configuration: .init(),
            fsync: { _ in
                guard failing.withLock({ $0 }) else { return 0 }
                errno = EIO
                return -1
            })
        let earlier = try await store.stageAppend([try Self.unit("earlier")], tenant: "default")
        await #expect(throws: FileStoreError.self) { try await earlier.durable() }
        failing.withLock { $0 = false }
        #expect(try await store.append([try Self.unit("later")], tenant: "default") == 1)
        let claim = try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero)
        #expect(claim?.messages.map(\.messageID) == ["later"])
    }
}

/// A profile store that counts the applies it passes on.
private struct CountingProfileStore: ProfileStore {
    let base: MemoryProfileStore
    private let count = Locked(0)

    init(base: MemoryProfileStore) { self.base = base }

    var applies: Int { count.withLock { $0 } }
    var recordingOrder: ProfileRecordingOrder { base.recordingOrder }

    func apply(_ changes: ProfileChanges) async throws -> CollectedProfile {
        count.withLock { $0 += 1 }
        return try await base.apply(changes)
    }
}
