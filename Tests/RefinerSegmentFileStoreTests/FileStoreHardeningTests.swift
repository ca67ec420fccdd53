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

    // MARK: - Values read from disk never trap

    /// A checkpoint whose mark has the largest sequence (`UInt64.max`) opens (it used to trap at
    /// `sequence + 1`): the mark is dropped and reported as damage, and the store works.
    @Test func aCheckpointMarkWithAnImpossibleSequenceIsDamageNotATrap() async throws {
        let path = Self.directory("mark-max")
        defer { try? FileManager.default.removeItem(at: path) }
        try Self.writeCheckpoint(
            FileMessageStore.Checkpoint(mark: .init(sequence: .max, bytes: Data([1, 2, 3]))), in: path)
        let store = try FileMessageStore(directory: path)
        #expect(store.markAtOpen == nil)
        let damage = try await store.recover(tenant: "default").damage
        #expect(damage.count == 1)
        #expect(damage.first?.location.contains("checkpoint.json") == true, "\(damage)")
        #expect(try await store.append([try Self.unit("a")], tenant: "default") == 1)
    }

    /// A record with a good checksum and the largest sequence, in a segment and in acks.log, is damage
    /// (it used to trap at `sequence + 1`); the good records around it are kept.
    @Test(arguments: ["segment", "acks"])
    func aRecordWithAnImpossibleSequenceIsDamageNotATrap(file: String) async throws {
        let path = Self.directory("record-max")
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try Self.unit("kept")], tenant: "default") == 1)
        }
        let name = file == "segment" ? try #require(try Self.segmentFiles(path).first) : "acks.log"
        let handle = try FileHandle(forWritingTo: path.appendingPathComponent(name))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(SegmentRecord(sequence: .max, payload: [0, 0, 0, 0, 0, 0, 0, 0]).encoded()))
        try handle.close()
        let store = try FileMessageStore(directory: path)
        let recovery = try await store.recover(tenant: "default")
        #expect(recovery.messages == 1)
        #expect(recovery.damage.count == 1, "\(recovery.damage)")
        #expect(await store.nextSequence < UInt64.max / 2)
        #expect(try await Self.claimAll(store)?.messages.map(\.messageID) == ["kept"])
    }

    /// Retry schedules whose counts cannot be real (negative) are dropped and reported; the unit is sent
    /// with a fresh schedule.
    @Test func aRetryScheduleWithImpossibleCountsIsDamage() async throws {
        let path = Self.directory("counts")
        defer { try? FileManager.default.removeItem(at: path) }
        let sequence: UInt64
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try Self.unit("a")], tenant: "default") == 1)
            sequence = await store.firstHeldSequence()
        }
        try Self.writeCheckpoint(
            FileMessageStore.Checkpoint(retryStates: [sequence: SegmentRetryState(failures: -1, retryCount: -5)]),
            in: path)
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").damage.count == 1)
        #expect(try await Self.claimAll(store)?.retryState == SegmentRetryState())
    }

    /// Hostile schedules a store may hand back (a first failure 1e30 s ago, `Int.max` failures and retries)
    /// and a pause 1e30 s long go through the pipeline without a trap: the message fails for good on its
    /// next failure (its time and attempts are spent), and the pause is cut to `maximumRetryAfter`.
    @Test func aHostileCheckpointNeverTrapsThePipeline() async throws {
        let path = Self.directory("hostile")
        defer { try? FileManager.default.removeItem(at: path) }
        let sequence: UInt64
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try Self.unit("a")], tenant: "default") == 1)
            sequence = await store.firstHeldSequence()
        }
        let clock = VirtualClock()
        try Self.writeCheckpoint(
            FileMessageStore.Checkpoint(
                retryStates: [
                    sequence: SegmentRetryState(
                        failures: .max, retryCount: .max, firstFailure: Date(timeIntervalSinceReferenceDate: -1e30))
                ],
                pauses: ["default": Date(timeIntervalSinceReferenceDate: 1e30)]), in: path)
        let store = try FileMessageStore(directory: path)
        let transport = ScriptedTransport([.status(503)], whenDone: .status(200))
        let outcome: SegmentOutcome? = try await SegmentPipeline.withPipeline(
            writeKey: WriteKey("wk"), transport: transport, store: store, clock: clock, wallClock: clock.wallClock
        ) { pipeline in
            for await outcome in await pipeline.outcomes(bufferingPolicy: .unbounded) {
                switch outcome {
                case .delivered: return outcome
                case .failed(let messages, _) where !messages.isEmpty: return outcome
                default: continue
                }
            }
            return nil
        }
        guard case .failed(let messages, let reason) = outcome else {
            Issue.record("its budget was spent, so it fails: \(String(describing: outcome))")
            return
        }
        #expect(messages.map(\.messageID) == ["a"])
        #expect(reason.code == .attemptsExhausted, "\(reason)")
        #expect(clock.now.offset <= .seconds(301), "the pause was cut to maximumRetryAfter: \(clock.now.offset)")
    }

    // MARK: - A failed directory sync is a failure

    /// When the directory cannot be synced after the rename, the checkpoint is not reported durable:
    /// `setPause` and `settle(.retry)` throw `FileStoreError`.
    @Test func aFailedDirectorySyncAfterARenameThrows() async throws {
        let path = Self.directory("dir-fsync")
        defer { try? FileManager.default.removeItem(at: path) }
        let failing = Locked(false)
        let store = try FileMessageStore(
            directory: path, configuration: .init(), fsync: { fsync($0) },
            replaceSync: { descriptor in
                var info = stat()
                let isDirectory = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
                guard isDirectory, failing.withLock({ $0 }) else { return fsync(descriptor) }
                errno = EIO
                return -1
            })
        #expect(try await store.append([try Self.unit("a")], tenant: "default") == 1)
        failing.withLock { $0 = true }
        await #expect(throws: FileStoreError.self) {
            try await store.setPause(until: Date(timeIntervalSince1970: 2_000_000_000), tenant: "default")
        }
        let claim = try #require(try await Self.claimAll(store))
        await #expect(throws: FileStoreError.self) {
            try await store.settle(claim, messages: 0..<1, as: .retry(SegmentRetryState(failures: 1, retryCount: 1)))
        }
    }

    /// Opening rewrites acks.log whole: a directory that cannot be synced fails the open.
    @Test func anOpenWhoseDirectorySyncFailsThrows() throws {
        let path = Self.directory("dir-fsync-open")
        defer { try? FileManager.default.removeItem(at: path) }
        #expect(throws: FileStoreError.self) {
            _ = try FileMessageStore(
                directory: path, configuration: .init(), fsync: { fsync($0) },
                replaceSync: { descriptor in
                    var info = stat()
                    guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                        return fsync(descriptor)
                    }
                    errno = EIO
                    return -1
                })
        }
    }

    // MARK: - A claim that throws claims nothing

    /// A claim finds a damaged record, and writing its acknowledgement fails: the claim throws and the
    /// good units it would have taken are claimable again (they used to be left claimed by no claim, so
    /// `flush()` waited until a restart).
    @Test func aClaimWhoseDamageCannotBeAcknowledgedLeavesItsUnitsReady() async throws {
        let path = Self.directory("claim-ack")
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { fsync($0) }, recentLimit: 0)
        #expect(try await store.append([try Self.unit("damaged"), try Self.unit("good")], tenant: "default") == 2)
        // Flip a byte in the first record's payload.
        let segment = path.appendingPathComponent(try #require(try Self.segmentFiles(path).first))
        var bytes = try Data(contentsOf: segment)
        bytes[SegmentRecord.headerSize + 20] ^= 0xFF
        try bytes.write(to: segment)
        // acks.log's descriptor now refuses writes.
        let acks = await store.acks
        let saved = dup(acks)
        let readOnly = open("/dev/null", O_RDONLY)
        #expect(dup2(readOnly, acks) == acks)
        close(readOnly)
        await #expect(throws: FileStoreError.self) { try await Self.claimAll(store) }
        #expect(try await store.usage(tenant: "default").claimableMessages == 2, "nothing is left claimed")
        #expect(dup2(saved, acks) == acks)
        close(saved)
        let claim = try #require(try await Self.claimAll(store))
        #expect(claim.messages.map(\.messageID) == ["good"])
        #expect(claim.unreadable.count == 1)
    }

    /// A unit whose record would pass the largest a record may be (64 MiB) is refused by `append` with an
    /// error that says so, rather than stored and found damaged when read back.
    @Test func aUnitLargerThanARecordHoldsIsRefused() async throws {
        let path = Self.directory("huge")
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path, configuration: .init(sync: .operatingSystem))
        let json =
            #"{"type":"identify","messageId":"m","userId":"u","p":""#
            + String(repeating: "x", count: 30_000) + #""}"#
        let message = try SegmentMessage(json: Array(json.utf8))
        let huge = Array(repeating: message, count: SegmentRecord.maximumPayload / 30_000 + 1)
        let error = await #expect(throws: FileStoreError.self) {
            try await store.append([huge], tenant: "default")
        }
        #expect(error?.description.contains("64 MiB") == true, "\(String(describing: error))")
        // A smaller unit before it is taken; the huge one is left for the next call, which throws.
        #expect(try await store.append([try Self.unit("small"), huge], tenant: "default") == 1)
        #expect(
            try Self.segmentFiles(path).map { try Self.fileSize(path.appendingPathComponent($0)) }.reduce(0, +) < 1
                << 20)
    }

    static func fileSize(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    }
}

extension FileMessageStore {
    /// The sequence of the first unit held, for tests that write a checkpoint naming it.
    fileprivate func firstHeldSequence() -> UInt64 {
        sequence(of: tenants[0].entries[tenants[0].head].key)
    }
}

/// acks.log while the store runs: rewritten with only what is still needed once it passes twice that (and
/// the floor), so a long-running store's log stays bounded, and a reopen sees the same state.
@Suite struct AcksLogCompactionTests {
    static func acksLogSize(_ path: URL) throws -> Int {
        try FileStoreHardeningTests.fileSize(path.appendingPathComponent("acks.log"))
    }

    /// A long run of append, claim and settle, one unit each, with every 50th unit left unsettled (so
    /// segments stay, and their acknowledgements are needed): acks.log never passes its bound, and a reopen
    /// holds exactly the unsettled units.
    @Test func aLongRunKeepsAcksLogBoundedAndReopensTheSameState() async throws {
        let path = FileStoreHardeningTests.directory("acks-bound")
        defer { try? FileManager.default.removeItem(at: path) }
        let floor = 4096
        var kept: [String] = []
        var largest = 0
        do {
            let store = try FileMessageStore(
                directory: path, configuration: .init(sync: .operatingSystem, segmentBytes: 16 << 10),
                fsync: { fsync($0) }, acksCompactionFloor: floor)
            for index in 0..<3000 {
                let id = "u\(index)"
                #expect(try await store.append([try FileStoreHardeningTests.unit(id)], tenant: "default") == 1)
                let claim = try #require(
                    try await store.claim(tenant: "default", maximumMessages: 1, maximumBytes: 1 << 20, lease: .zero))
                if index % 50 == 0 {
                    kept.append(id)  // claimed, never settled
                    continue
                }
                try await store.settle(claim, messages: 0..<1, as: .delivered)
                largest = max(largest, try Self.acksLogSize(path))
            }
            let needed = await store.neededAcknowledgements
            #expect(needed > 0, "segments with an unsettled unit keep their acknowledgements")
            // Twice what is needed, or the floor, plus the record that passed it.
            let bound = max(floor, 2 * (SegmentRecord.headerSize + 8 * needed)) + SegmentRecord.headerSize + 8
            #expect(largest <= bound, "acks.log reached \(largest) bytes; bound \(bound)")
        }
        let store = try FileMessageStore(directory: path)
        let recovery = try await store.recover(tenant: "default")
        #expect(recovery.damage.isEmpty, "\(recovery.damage)")
        #expect(recovery.messages == kept.count)
        let claim = try #require(try await FileStoreHardeningTests.claimAll(store))
        #expect(claim.messages.map(\.messageID) == kept)
    }

    /// The rewrite is temp file, `fsync`, rename: a crash before the rename leaves the old log (and a temp
    /// file that opening ignores), one after it the new one. Both reopen to the same state; shown here by a
    /// rewrite whose temp file cannot be synced (it stops before the rename, as a crash would) and by a
    /// leftover temp file.
    @Test func aRewriteCutShortLosesNothing() async throws {
        let path = FileStoreHardeningTests.directory("acks-cut")
        defer { try? FileManager.default.removeItem(at: path) }
        let failing = Locked(false)
        var kept: [String] = []
        do {
            let store = try FileMessageStore(
                directory: path, configuration: .init(sync: .operatingSystem, segmentBytes: 16 << 10),
                fsync: { fsync($0) },
                replaceSync: { descriptor in
                    guard failing.withLock({ $0 }) else { return fsync(descriptor) }
                    errno = EIO
                    return -1
                }, acksCompactionFloor: 1024)
            failing.withLock { $0 = true }
            for index in 0..<400 {
                let id = "u\(index)"
                #expect(try await store.append([try FileStoreHardeningTests.unit(id)], tenant: "default") == 1)
                let claim = try #require(try await FileStoreHardeningTests.claimAll(store))
                if index % 10 == 0 {
                    kept.append(id)
                    continue
                }
                try await store.settle(claim, messages: 0..<1, as: .delivered)
            }
            #expect(try Self.acksLogSize(path) > 1024, "no rewrite got through")
        }
        try Data("torn".utf8).write(to: path.appendingPathComponent("acks.log.tmp"))
        let store = try FileMessageStore(directory: path)
        let recovery = try await store.recover(tenant: "default")
        #expect(recovery.damage.isEmpty, "\(recovery.damage)")
        #expect(recovery.messages == kept.count)
        #expect(try await FileStoreHardeningTests.claimAll(store)?.messages.map(\.messageID) == kept)
    }
}
