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

/// The store against its own history and against files it did not write: a sequence number is never
/// given twice, values read from disk never trap, and a failed write is never taken for a durable one.
@Suite struct FileStoreHardeningTests {
    static func directory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("hardening-\(name)-\(UUID().uuidString)")
    }

    static func unit(_ id: String) throws -> [SegmentMessage] {
        [try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u"}"#.utf8))]
    }

    static func claimAll(_ store: FileMessageStore) async throws -> SegmentClaim? {
        try await store.claim(tenant: "default", maximumMessages: 1000, maximumBytes: 1 << 24, lease: .zero)
    }

    static func segmentFiles(_ path: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasPrefix("segment-") }.sorted()
    }

    static func writeCheckpoint(_ checkpoint: FileMessageStore.Checkpoint, in path: URL) throws {
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        try JSONEncoder().encode(checkpoint).write(to: path.appendingPathComponent("checkpoint.json"))
    }

    // MARK: - A sequence is never given twice

    /// Run A retries a unit (its schedule goes to the checkpoint), then delivers it (the schedule goes in
    /// memory only) and its segment is deleted; run B opens and closes (acks.log rewritten); run C appends a
    /// new unit: it gets a sequence of its own and a fresh schedule, not the old unit's.
    @Test func aNewUnitNeverInheritsASettledUnitsRetrySchedule() async throws {
        let path = Self.directory("inherit")
        defer { try? FileManager.default.removeItem(at: path) }
        let stale = SegmentRetryState(
            failures: 7, retryCount: 7, firstFailure: Date(timeIntervalSince1970: 1_000_000_000),
            nextAttempt: Date(timeIntervalSince1970: 1_000_000_100))
        let firstSegments: [String]
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try Self.unit("old")], tenant: "default") == 1)
            let claim = try #require(try await Self.claimAll(store))
            try await store.settle(claim, messages: 0..<1, as: .retry(stale))
            firstSegments = try Self.segmentFiles(path)
            try await store.settle(claim, messages: 0..<1, as: .delivered)
            #expect(try Self.segmentFiles(path).isEmpty)
        }
        do { _ = try FileMessageStore(directory: path) }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.append([try Self.unit("new")], tenant: "default") == 1)
        let claim = try #require(try await Self.claimAll(store))
        #expect(claim.messages.map(\.messageID) == ["new"])
        #expect(claim.retryState == SegmentRetryState(), "a fresh schedule, not the delivered unit's")
        let segments = try Self.segmentFiles(path)
        #expect(segments.count == 1)
        #expect(segments.first.map { $0 > firstSegments[0] } == true, "a later first sequence: \(segments)")
    }

    /// The checkpoint keeps only schedules of units still held; one of a unit gone is dropped on open and
    /// never written again.
    @Test func aScheduleOfAUnitNoLongerHeldIsDroppedOnOpen() async throws {
        let path = Self.directory("prune")
        defer { try? FileManager.default.removeItem(at: path) }
        try Self.writeCheckpoint(
            FileMessageStore.Checkpoint(retryStates: [1: SegmentRetryState(failures: 3, retryCount: 3)]), in: path)
        let store = try FileMessageStore(directory: path)
        #expect(await store.retryStates.isEmpty)
        #expect(await store.nextSequence > 1, "a sequence a schedule named is not given again")
        #expect(try await store.append([try Self.unit("new")], tenant: "default") == 1)
        let claim = try #require(try await Self.claimAll(store))
        #expect(claim.retryState == SegmentRetryState())
    }
}
