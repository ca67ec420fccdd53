import Foundation
import RefinerSegment
import Testing

@testable import RefinerSegmentFileStore

#if canImport(Glibc)
import Glibc
#endif

@Suite struct GroupCommitTests {
    private func directory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("group-commit-\(UUID().uuidString)")
    }

    private func unit(_ id: String) throws -> [SegmentMessage] {
        [try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u"}"#.utf8))]
    }

    /// 40 callers append at once while `fsync` is held: every one of them waits, and at most two passes
    /// (one that began before some had written, and one for everyone who wrote while it ran) cover all 40.
    @Test func concurrentAppendsShareOneFsync() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let held = HeldSync()
        let store = try FileMessageStore(
            directory: path, configuration: .init(), fsync: { held.sync($0) })
        let callers = 40
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<callers {
                group.addTask { try await store.append([try unit("m\(index)")], tenant: "default") }
            }
            // Every caller has written its record and waits for a pass (the first one is held, if it began).
            while store.appendsWaitingForSync < callers { await Task.yield() }
            // At most the first pass began: the new segment and its directory, synced at once.
            #expect(held.count <= 2)
            #expect(store.syncPasses.count == 0)
            held.openGate()
            var accepted = 0
            for try await count in group { accepted += count }
            #expect(accepted == callers)
        }
        #expect(
            store.syncPasses.count <= 2,
            "at most one held pass and one for everyone who wrote during it: \(store.syncPasses.count)")
        #expect(try await store.usage(tenant: "default").messages == callers)
    }

    /// After a pass that released several callers, the next one waits a moment for them to write again
    /// (the commit delay), but a caller that comes alone is synced all the same: the delay ends.
    @Test func aCallerThatComesAloneAfterACrowdIsStillSynced() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        // A disk whose fsync takes 8 ms, so the delay is at its longest (2 ms).
        let store = try FileMessageStore(
            directory: path, configuration: .init(),
            fsync: { descriptor in
                usleep(8_000)
                return fsync(descriptor)
            })
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask { try await store.append([try unit("m\(index)")], tenant: "default") }
            }
            for try await count in group { #expect(count == 1) }
        }
        let before = store.syncCount
        #expect(try await store.append([try unit("alone")], tenant: "default") == 1)
        #expect(store.syncCount > before)
        #expect(try await store.usage(tenant: "default").messages == 9)
    }

    /// A segment file just made is named in the directory: the directory is synced by the pass that syncs
    /// the file's first records, before the append returns, and not again for later records in that file.
    @Test func aNewSegmentFilesDirectoryIsSyncedBeforeItsFirstAppendReturns() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let synced = Locked<[Bool]>([])  // per fsync call: was it a directory?
        let store = try FileMessageStore(
            directory: path, configuration: .init(),
            fsync: { descriptor in
                var info = stat()
                let isDirectory = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
                synced.withLock { $0.append(isDirectory) }
                return fsync(descriptor)
            })
        #expect(try await store.append([try unit("first")], tenant: "default") == 1)
        #expect(synced.withLock { $0.filter { $0 }.count } == 1, "the directory, once: \(synced.withLock { $0 })")
        #expect(synced.withLock { $0.filter { !$0 }.count } >= 1, "and the segment")
        #expect(try await store.append([try unit("second")], tenant: "default") == 1)
        #expect(synced.withLock { $0.filter { $0 }.count } == 1, "not again for the same file")
    }

    @Test func withTheOperatingSystemPolicyNothingIsSynced() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let held = HeldSync()
        held.openGate()
        let store = try FileMessageStore(
            directory: path, configuration: .init(sync: .operatingSystem), fsync: { held.sync($0) })
        #expect(try await store.append([try unit("a"), try unit("b")], tenant: "default") == 2)
        #expect(held.count == 0)
    }

    /// A batch refused with 400 is split: each half is settled on its own, and both are acknowledged.
    @Test func bothHalvesOfASplitClaimAreAcknowledged() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([try unit("a"), try unit("b"), try unit("c")], tenant: "default")
            let claim = try #require(
                try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
            try await store.settle(claim, messages: 0..<1, as: .delivered)
            try await store.settle(claim, messages: 1..<3, as: .failed("refused"))
            #expect(try await store.usage(tenant: "default").messages == 0)
        }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").messages == 0)
    }

    @Test func statusNamesEveryTenantItsOldestMessageAndItsPause() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let before = Date()
        let end = Date(timeIntervalSince1970: 2_000_000_000)
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([try unit("a"), try unit("b")], tenant: "acme")
            _ = try await store.append([try unit("c")], tenant: "globex")
            try await store.setPause(until: end, tenant: "initech")
        }
        let store = try FileMessageStore(directory: path)
        let status = try await store.status()
        #expect(status.tenants.map(\.name) == ["acme", "globex", "initech"])
        #expect(status.tenants.map(\.messages) == [2, 1, 0])
        #expect(status.tenants[2].pausedUntil == end)
        let oldest = try #require(status.tenants[0].oldestAppended)
        #expect(oldest >= before.addingTimeInterval(-1) && oldest <= Date().addingTimeInterval(1))
        #expect(status.storedBytes > 0 && status.tenants[0].bytes > status.tenants[1].bytes)
        #expect(status.damage.isEmpty)
    }

    /// Messages come back from disk as they were recorded: kind, messageId, responseId and the exact JSON.
    @Test func aClaimReadsTheMessagesBackExactly() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let message = SegmentMessage(
            kind: .group, messageID: "m-1", responseID: "resp_9",
            json: Array(#"{"type":"group","messageId":"m-1","userId":"u","groupId":"g"}"#.utf8))
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([[message], try unit("n")], tenant: "default")
        }
        let store = try FileMessageStore(directory: path)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.first == message)
        #expect(claim.messages.last?.messageID == "n")
        #expect(claim.unitEnds == [1, 2])
    }

    /// A tenant name too long for a record's header is refused with an error naming it, not a trap, and
    /// nothing is written; a text of a message longer than a record's field (65534 bytes) is cut, not a trap.
    @Test func aTenantNameTooLongForARecordIsRefusedAndNothingIsWritten() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        // Claims read records back from disk, so the cut field is what the record holds.
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { fsync($0) }, recentLimit: 0)
        let tenant = String(repeating: "t", count: 70_000)
        await #expect(throws: (any Error).self) { _ = try await store.append([try unit("a")], tenant: tenant) }
        do {
            _ = try await store.append([try unit("a")], tenant: tenant)
        } catch {
            #expect("\(error)".contains("tenant name of more than 65535 bytes"))
        }
        #expect(try await store.status().storedBytes == 0)
        let long = SegmentMessage(
            kind: .identify, messageID: "m-2", responseID: String(repeating: "r", count: 70_000),
            json: Array(#"{"type":"identify","messageId":"m-2","userId":"u"}"#.utf8))
        #expect(try await store.append([[long]], tenant: "default") == 1)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.map(\.json) == [long.json])
        #expect(claim.messages.first?.responseID == String(repeating: "r", count: 65_534))
        #expect(claim.messages.first?.messageID == "m-2")
    }

    /// A record flipped on disk after the store opened is found when claimed: dropped and reported, never sent.
    @Test func aRecordDamagedAfterOpeningIsDroppedOnClaimAndReported() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        // Claims read every record back: none is taken from the memory of what was just appended.
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { fsync($0) }, recentLimit: 0)
        _ = try await store.append([try unit("a"), try unit("b")], tenant: "default")
        let segment = try #require(
            try FileManager.default.contentsOfDirectory(atPath: path.path).first { $0.hasPrefix("segment-") })
        let descriptor = open(path.appendingPathComponent(segment).path, O_RDWR)
        var byte: UInt8 = 0xFF
        _ = pwrite(descriptor, &byte, 1, 40)
        close(descriptor)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.map(\.messageID) == ["b"])
        #expect(try await store.status().damage.count == 1)
        #expect(try await store.usage(tenant: "default").messages == 1)
    }
}
