import Foundation
import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A durable ``SegmentMessageStore`` in a directory: append-only segment files of checksummed records,
/// an acknowledgement log, and a checkpoint for the `Retry-After` pause and retry schedules.
///
/// Each accepted unit is one record (`length | CRC32C | sequence | payload`) in the current segment file;
/// a settled unit's sequence goes to `acks.log`; a segment whose units are all settled is deleted. On
/// open, a torn tail (a write cut by a crash) is cut off and reported; a corrupt record before it is
/// skipped and reported as damage (a failed outcome), never sent. The directory is locked (`flock`): a
/// second process gets an error naming the holder's pid.
///
/// Memory holds a compact index of the units (24 bytes each), not their messages: a claim reads its
/// records back from the segment files. Concurrent appends share one `fsync` (group commit), run on a
/// thread of the store's own, off the cooperative pool.
///
/// What is durable when `record` returns depends on ``SyncPolicy`` (Docs/Delivery.md has the table).
public actor FileMessageStore: SegmentMessageStore, SegmentStagedAppendStore {
    /// When appended records reach the disk.
    public enum SyncPolicy: Sendable, Hashable {
        /// `fsync` before `append` returns: an accepted message survives a crash of the machine. Callers
        /// appending at the same time share one `fsync`.
        case beforeAcknowledging
        /// `fsync` at most this often, in the background: a crash of the process loses nothing, a power
        /// cut up to this much.
        case interval(Duration)
        /// Never `fsync`: the OS writes when it likes; a crash of the process loses nothing, of the
        /// machine whatever the OS had not written.
        case operatingSystem
    }

    /// The store's settings.
    public struct Configuration: Sendable, Hashable {
        /// When records reach the disk: ``SyncPolicy/beforeAcknowledging`` by default.
        public var sync: SyncPolicy
        /// The most bytes of segment files: 256 MiB. A full store accepts no more units until segments are
        /// settled and deleted (the pipeline waits, or fails fast).
        public var maximumBytes: Int
        /// A segment file is closed and a new one started past this size: 1 MiB.
        public var segmentBytes: Int

        /// Creates settings.
        public init(sync: SyncPolicy = .beforeAcknowledging, maximumBytes: Int = 256 << 20, segmentBytes: Int = 1 << 20)
        {
            self.sync = sync
            self.maximumBytes = maximumBytes
            self.segmentBytes = segmentBytes
        }
    }

    /// One unsettled unit: where its record is and what it holds (24 bytes; the messages stay on disk).
    struct Entry: Sendable {
        enum State: UInt8 {
            case ready, claimed, settled
        }

        /// The segment's number in the upper half, the record's sequence less the segment's first in the
        /// lower: increasing in append order, so a tenant's entries are sorted by it.
        var key: UInt64
        /// Where the record starts in its segment file.
        var offset: UInt32
        /// The record's bytes, header included.
        var length: UInt32
        /// The bytes of the unit's message JSON.
        var jsonBytes: UInt32
        var messages: UInt16
        var state: State

        var segment: UInt32 { UInt32(truncatingIfNeeded: key >> 32) }
        /// Bytes of JSON and commas, as ``SegmentStoreUsage/claimableBytes`` counts them.
        var usageBytes: Int { Int(jsonBytes) + Int(messages) }
    }

    /// A tenant's entries in append order (settled ones drop off the front), with running totals, so
    /// `usage` and the size bound never walk the entries.
    struct TenantQueue {
        var name: String
        var entries: [Entry] = []
        var head = 0
        var messages = 0
        var claimableMessages = 0
        var claimableBytes = 0
        var storedBytes = 0

        init(name: String) { self.name = name }

        /// The position of the entry with `key`, by binary search.
        func position(of key: UInt64) -> Int? {
            var low = head
            var high = entries.count
            while low < high {
                let middle = (low + high) / 2
                if entries[middle].key < key { low = middle + 1 } else { high = middle }
            }
            return low < entries.count && entries[low].key == key ? low : nil
        }

        /// Adds an entry at its place by key: at the end, unless an append that wrote earlier resumed later.
        mutating func add(_ entry: Entry) {
            if let last = entries.last, last.key > entry.key {
                var low = head
                var high = entries.count
                while low < high {
                    let middle = (low + high) / 2
                    if entries[middle].key < entry.key { low = middle + 1 } else { high = middle }
                }
                entries.insert(entry, at: low)
            } else {
                entries.append(entry)
            }
            messages += Int(entry.messages)
            storedBytes += Int(entry.length)
            if entry.state == .ready {
                claimableMessages += Int(entry.messages)
                claimableBytes += entry.usageBytes
            }
        }

        /// Moves the entry at `index` to `state`, keeping the totals.
        mutating func mark(_ index: Int, _ state: Entry.State) {
            let entry = entries[index]
            guard entry.state != state, entry.state != .settled else { return }
            if entry.state == .ready {
                claimableMessages -= Int(entry.messages)
                claimableBytes -= entry.usageBytes
            }
            switch state {
            case .ready:
                claimableMessages += Int(entry.messages)
                claimableBytes += entry.usageBytes
            case .claimed:
                break
            case .settled:
                messages -= Int(entry.messages)
                storedBytes -= Int(entry.length)
            }
            entries[index].state = state
        }

        /// Drops settled entries off the front, now and then for real (amortised O(1)).
        mutating func compact() {
            while head < entries.count, entries[head].state == .settled { head += 1 }
            if head == entries.count {
                entries.removeAll(keepingCapacity: entries.count < 4096)
                head = 0
            } else if head >= 4096, head * 2 >= entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }

        /// The first unsettled entry.
        var front: Entry? { entries[head...].first { $0.state != .settled } }
    }

    /// The latest mark (``append(_:tenant:marks:)``, ``setMark(_:)``): a caller's note of how far its input
    /// got, kept with the units it covers.
    struct Mark {
        var sequence: UInt64
        var bytes: [UInt8]
        /// The segment whose record holds it; `nil` when only the checkpoint does.
        var segment: UInt32?
        /// Whether the checkpoint holds it (so its segment may go).
        var isCheckpointed: Bool
    }

    struct Segment {
        /// The sequence of its first record.
        var first: UInt64
        var path: String
        var size: Int
        /// Unsettled units in it.
        var live: Int
        /// The sequences of its settled units: acknowledgements a rewrite of acks.log keeps while it is on
        /// disk (8 bytes each, gone with the segment).
        var settled: [UInt64] = []
    }

    let directory: URL
    let configuration: Configuration
    let lock: DirectoryLock
    let commit: GroupCommit
    var tenants: [TenantQueue] = []
    var tenantNumbers: [String: Int] = [:]
    var segments: [UInt32: Segment] = [:]
    var nextSegment: UInt32 = 0
    var active: (segment: UInt32, descriptor: Int32)?
    /// The segment last read for a claim, kept open for the next.
    var reader: (segment: UInt32, descriptor: Int32)?
    var acks: Int32 = -1
    /// The bytes of acks.log.
    var acksBytes = 0
    /// The acknowledgements a rewrite of acks.log keeps: every live segment's ``Segment/settled``.
    package internal(set) var neededAcknowledgements = 0
    /// The size acks.log must reach before the next rewrite is tried, after one failed (0 after success).
    var nextAcksCompaction = 0
    /// The store's directory, open to be synced when a segment file is created in it: a new file's name is
    /// durable only once its directory is, and records in a file whose name is lost are lost with it.
    var directoryDescriptor: Int32 = -1
    var nextSequence: UInt64 = 1
    /// The bytes of every segment file.
    var storedBytes = 0
    /// Each claim's tenant and units (`nil` once settled), in the claim's order.
    var claims: [UInt64: (tenant: Int, keys: [UInt64?])] = [:]
    var nextClaim: UInt64 = 1
    var retryStates: [UInt64: SegmentRetryState] = [:]
    var pauses: [String: Date] = [:]
    var damage: [SegmentStoreDamage] = []
    var damageReported = 0
    var mark: Mark?
    /// Appends are numbered as they are written; the next number, and the first not yet indexed or undone.
    var nextWrite: UInt64 = 0
    var nextToSettle: UInt64 = 0
    /// Appends whose wait for durability returned ahead of an append written before them: what became of
    /// each, kept until every earlier one is settled.
    var settledAhead: [UInt64: (written: WrittenUnits, isDurable: Bool)] = [:]
    /// The durability waits of those appends, resumed once they are settled in write order.
    var waitingToSettle: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Failed reads of units at the front, by entry key, for the bound on attempts.
    var readFailures: [UInt64: Int] = [:]
    /// How many claims try to read a unit before it is set aside.
    static let readAttempts = 3
    /// The messages of units this process appended and no claim took yet, by entry key, up to
    /// ``recentLimit`` bytes of JSON: a claim takes them from here instead of reading their records back,
    /// checking them and decoding them again (a unit's record holds exactly these messages). Units past the
    /// limit, units of an earlier run, and units handed back after a claim are read from the segment files.
    var recent: [UInt64: [SegmentMessage]] = [:]
    var recentBytes = 0
    /// The bound on ``recent``: 4 MiB of message JSON (0 reads every claim back from disk).
    let recentLimit: Int
    /// The least size of acks.log that is rewritten (``compactAcknowledgementsIfNeeded()``).
    let acksCompactionFloor: Int
    /// `fsync` for ``replace(_:with:sync:)``, or a stand-in for tests.
    let replaceSync: @Sendable (Int32) -> Int32
    /// `pread`, or a stand-in for tests.
    let readAt: @Sendable (Int32, UnsafeMutableRawPointer, Int, off_t) -> Int
    /// The mark found on open: the bytes of the latest ``append(_:tenant:marks:)`` or ``setMark(_:)`` that
    /// completed before the store was last closed (or killed); `nil` when there was none.
    package nonisolated let markAtOpen: [UInt8]?

    /// Opens (or creates) the store in `directory` and reads back what it holds.
    ///
    /// - Throws: ``FileStoreError`` when another process holds the directory, or a file cannot be read.
    public init(directory: URL, configuration: Configuration = Configuration()) throws {
        try self.init(directory: directory, configuration: configuration, fsync: { Glibc.fsync($0) })
    }

    /// Opens the store with a stand-in for `fsync` (tests count and hold syncs with it).
    ///
    /// - Parameter replaceSync: The `fsync` of files written whole (the checkpoint, a rewritten acks.log)
    ///   and of the directory after their rename; apart from `fsync`, so tests can fail it alone.
    /// - Parameter commitDelay: Whether a pass waits a moment for the callers the last one released
    ///   (``GroupCommit``); off only to measure what it brings.
    /// - Parameter recentLimit: The bytes of message JSON of units just appended that claims take from memory
    ///   (``recent``); 0 in tests that damage or fail reads of records this store wrote.
    /// - Parameter acksCompactionFloor: The size acks.log may reach before it is rewritten with only what is
    ///   still needed (it is rewritten once past both this and twice that): 1 MiB; smaller in tests.
    package init(
        directory: URL, configuration: Configuration, fsync: @escaping @Sendable (Int32) -> Int32,
        replaceSync: @escaping @Sendable (Int32) -> Int32 = { Glibc.fsync($0) },
        pread: @escaping @Sendable (Int32, UnsafeMutableRawPointer, Int, off_t) -> Int = {
            Glibc.pread($0, $1, $2, $3)
        },
        commitDelay: Bool = true,
        recentLimit: Int = 4 << 20,
        acksCompactionFloor: Int = 1 << 20
    ) throws {
        readAt = pread
        self.replaceSync = replaceSync
        self.acksCompactionFloor = acksCompactionFloor
        self.recentLimit = recentLimit
        // The segments hold personal data (answers, emails): a directory this creates is its owner's only,
        // and every file in it is created 0600 without following a planted symlink.
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        self.directory = directory
        self.configuration = configuration
        self.lock = try DirectoryLock(directory: directory)
        let mode: GroupCommit.Mode
        switch configuration.sync {
        case .beforeAcknowledging: mode = .immediately
        case .interval(let interval): mode = .interval(interval)
        case .operatingSystem: mode = .never
        }
        commit = GroupCommit(mode: mode, path: directory.path, sync: fsync, commitDelay: commitDelay)
        var opened = try Self.open(directory, sync: replaceSync)
        tenants = opened.tenants
        tenantNumbers = opened.tenantNumbers
        segments = opened.segments
        nextSegment = opened.nextSegment
        storedBytes = opened.storedBytes
        nextSequence = opened.nextSequence
        retryStates = opened.checkpoint.retryStates
        pauses = opened.checkpoint.pauses
        damage = opened.damage
        mark = opened.mark
        markAtOpen = opened.mark?.bytes
        acksBytes = opened.acksBytes
        neededAcknowledgements = opened.segments.values.reduce(0) { $0 + $1.settled.count }
        opened = .init()
        acks = try Self.openAppending(directory.appendingPathComponent("acks.log").path)
        directoryDescriptor = Glibc.open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else {
            throw FileStoreError.io("open", path: directory.path, errno: errno)
        }
    }

    deinit {
        if let active { commit.retire(active.descriptor) }
        if acks >= 0 { commit.retire(acks) }
        if directoryDescriptor >= 0 { commit.retire(directoryDescriptor) }
        if let reader { close(reader.descriptor) }
        commit.stop()
    }

    /// How many `fsync` calls the store made for its segments and acknowledgements.
    package nonisolated var syncCount: Int { commit.syncCount }

    /// How many passes of the sync thread there were, and the time their `fsync`s took in all.
    package nonisolated var syncPasses: (count: Int, syncTime: Duration) { commit.passStatistics }

    /// How many appends are durable (or failed) and wait for one written before them to be settled.
    package var appendsWaitingForEarlierOnes: Int { waitingToSettle.count }

    /// How many appends wait for an `fsync` now.
    package nonisolated var appendsWaitingForSync: Int { commit.waiting }

    /// Appends the units that fit under the size bound, as one write, then waits for the `fsync` the
    /// policy asks for (one for every caller waiting at the time).
    ///
    /// The units' records are encoded before the call enters the actor, so encoding never holds up the
    /// claims, settlements and other appends the actor serves.
    ///
    /// - Throws: ``FileStoreError`` when the write or its `fsync` fails, or when the first unit cannot be one
    ///   record (more than 65535 messages, or more than 64 MiB); such a unit after others ends the append
    ///   before it, and the next call throws.
    public nonisolated func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        let staged = try await stage(units, try Self.encode(units, tenant: tenant), tenant: tenant, marks: nil)
        try await staged.durable()
        return staged.accepted
    }

    /// Appends units as ``append(_:tenant:)`` does and, in the same write after the last unit accepted, that
    /// unit's mark (`marks[accepted - 1]`): opaque bytes the caller reads back as ``markAtOpen`` after a
    /// restart. The mark and the units it covers reach the disk together: a crash leaves either both or, for
    /// units written without their mark (a write cut short), units after the last mark, which
    /// ``discardUnitsAfterMark()`` drops for a caller that records them again.
    ///
    /// `send --store` keeps its input cursor this way, so a kill just after an append cannot leave the
    /// units in the store and the cursor before them.
    package nonisolated func append(_ units: [[SegmentMessage]], tenant: String, marks: [[UInt8]]) async throws
        -> Int
    {
        let staged = try await stage(units, try Self.encode(units, tenant: tenant), tenant: tenant, marks: marks)
        try await staged.durable()
        return staged.accepted
    }

    /// Writes the units that fit under the size bound, as one write, and returns the wait for their
    /// `fsync`: the actor is free for the next append while this one waits, and one pass of the sync
    /// thread covers every append written before it began.
    package nonisolated func stageAppend(_ units: [[SegmentMessage]], tenant: String) async throws
        -> SegmentStagedAppend
    {
        try await stage(units, try Self.encode(units, tenant: tenant), tenant: tenant, marks: nil)
    }

    /// - Parameter messages: The units as given, for ``recent``; `units` are their records' payloads.
    private nonisolated func stage(
        _ messages: [[SegmentMessage]], _ units: consuming EncodedUnits, tenant: String, marks: [[UInt8]]?
    ) async throws -> SegmentStagedAppend {
        var appended = try await writeEncoded(consume units, tenant: tenant, marks: marks)
        appended.messages = messages
        let written = appended
        guard written.accepted > 0 else { return SegmentStagedAppend(accepted: 0) {} }
        let commit = self.commit
        return SegmentStagedAppend(accepted: written.accepted) {
            // Indexed (claimable, counted by usage and recover) only once durable by the policy: a recover
            // that runs while this append waits for its fsync does not count the units twice. A unit whose
            // fsync failed is undone (``abandon(_:writtenThrough:mark:)``): a reopen never delivers what threw.
            var failure: (any Error)?
            do {
                try await commit.wait(for: written.ticket)
            } catch {
                failure = error
            }
            await self.settleInWriteOrder(written, isDurable: failure == nil)
            if let failure { throw failure }
        }
    }

    /// Indexes (or undoes) an append's units only after every append written before it: the waits of two
    /// appends synced by one pass return in any order, and a unit made claimable ahead of one written before
    /// it could be sent first. So a caller that knows its units are written after another's (the pipeline,
    /// which may let the next `record` of an account go on once this one is written) knows they are sent
    /// after them. Returns once this append is settled; an earlier one's wait has returned or is about to
    /// (its pass ended no later than this one's), so this waits for no `fsync`.
    ///
    /// Every staged append's `durable` must be called: a later one waits for it.
    private func settleInWriteOrder(_ written: WrittenUnits, isDurable: Bool) async {
        settledAhead[written.number] = (written, isDurable)
        while let next = settledAhead.removeValue(forKey: nextToSettle) {
            let number = nextToSettle
            nextToSettle += 1
            if next.isDurable { index(next.written) } else { abandon(next.written) }
            waitingToSettle.removeValue(forKey: number)?.resume()
        }
        guard written.number >= nextToSettle else { return }
        await withCheckedContinuation { waitingToSettle[written.number] = $0 }
    }

    /// The units' records, one after another in one buffer, made off the actor; their sequence numbers and
    /// checksums are set by ``writeEncoded(_:tenant:marks:)``.
    private static func encode(_ units: [[SegmentMessage]], tenant: String) throws -> EncodedUnits {
        let appendedAt = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        var tenant = tenant
        let tenantBytes = tenant.utf8.count
        // Checked here as well as where the tenant is first numbered: the record's header holds the length.
        guard tenantBytes <= Int(UInt16.max) else {
            throw FileStoreError.damaged("a tenant name of more than 65535 bytes cannot be stored")
        }
        var encoded = EncodedUnits()
        var taken = 0
        var total = 0
        for unit in units {
            guard unit.count <= Int(UInt16.max) else {
                if taken > 0 { break }
                throw FileStoreError.damaged(
                    "a unit of \(unit.count) messages is more than one record of the file store holds (65535)")
            }
            let size = UnitCodec.recordSize(unit, tenantBytes: tenantBytes)
            // A record past the largest payload reading accepts would be stored, then found damaged.
            guard size - SegmentRecord.headerSize <= SegmentRecord.maximumPayload else {
                if taken > 0 { break }
                throw FileStoreError.damaged(
                    "a unit of \(size) bytes is more than one record of the file store holds "
                        + "(\(SegmentRecord.maximumPayload >> 20) MiB)")
            }
            total += size
            taken += 1
        }
        encoded.units.reserveCapacity(taken)
        tenant.withUTF8 { tenantUTF8 in
            encoded.bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
                guard let base = buffer.baseAddress else { return }
                var end = 0
                for unit in units.prefix(taken) {
                    let (size, jsonBytes) = UnitCodec.writeRecord(
                        unit, tenant: tenantUTF8, appendedAt: appendedAt, to: UnsafeMutableRawPointer(base + end))
                    end += size
                    encoded.units.append(EncodedUnits.Unit(end: end, jsonBytes: jsonBytes, messages: unit.count))
                }
                // recordSize and writeRecord count the same fields: a record past its room is a bug here.
                precondition(end == total, "file store: encoded \(end) bytes into \(total)")
                initialized = end
            }
        }
        return encoded
    }

    /// Units' records made off the actor: every record in `bytes`, in order, each ending at its unit's `end`.
    struct EncodedUnits: Sendable {
        struct Unit: Sendable {
            var end: Int
            var jsonBytes: Int
            var messages: Int
        }
        var bytes: [UInt8] = []
        var units: [Unit] = []
    }

    /// What one append wrote: the entries to index (and the mark to keep) once `ticket` is synced, and
    /// where the active segment ended, to undo the write if the sync fails.
    struct WrittenUnits: Sendable {
        var accepted = 0
        var entries: [Entry] = []
        var tenant = 0
        var ticket: UInt64 = 0
        /// The append's place in write order (``settleInWriteOrder(_:isDurable:)``).
        var number: UInt64 = 0
        var end: (segment: UInt32, size: Int) = (0, 0)
        var mark: Mark?
        /// The units appended (their accepted prefix is `entries`), kept in ``recent`` while there is room.
        var messages: [[SegmentMessage]] = []
    }

    private func index(_ written: WrittenUnits) {
        for (entry, unit) in zip(written.entries, written.messages)
        where recentBytes + Int(entry.jsonBytes) <= recentLimit {
            recent[entry.key] = unit
            recentBytes += Int(entry.jsonBytes)
        }
        for entry in written.entries { tenants[written.tenant].add(entry) }
        if let appendedMark = written.mark, appendedMark.sequence > mark?.sequence ?? 0 { mark = appendedMark }
    }

    private func abandon(_ written: WrittenUnits) {
        abandon(written.entries[...], writtenThrough: written.end, mark: written.mark)
    }

    private func writeEncoded(_ encoded: consuming EncodedUnits, tenant: String, marks: [[UInt8]]?) throws
        -> WrittenUnits
    {
        let number = try tenantNumber(tenant)
        let segmentBytes = min(max(configuration.segmentBytes, 1), Int(Int32.max))
        var bytes = encoded.bytes
        let units = encoded.units
        var accepted = 0
        // The records not yet written: bytes[writtenThrough..<end].
        var writtenThrough = 0
        var end = 0
        var added: [Entry] = []
        added.reserveCapacity(units.count)
        // A segment counts its entries live as soon as they are written, so starting the next segment
        // never deletes one just written.
        var written = 0
        // Room for the mark, so that it never takes the store past its bound.
        let markBytes = marks.map { SegmentRecord.headerSize + 8 + ($0.map(\.count).max() ?? 0) } ?? 0
        var appendedMark: Mark?
        func flush() throws {
            try write(bytes, writtenThrough..<end)
            writtenThrough = end
            written = added.count
        }
        do {
            for unit in units {
                let start = end
                let recordSize = unit.end - start
                let pending = end - writtenThrough
                let stored = storedBytes + pending
                guard stored == 0 || stored + recordSize + markBytes <= configuration.maximumBytes else { break }
                if let active, let segment = segments[active.segment] {
                    let size = segment.size + pending
                    if (size + recordSize > segmentBytes && size > 0)
                        || nextSequence - segment.first > UInt64(UInt32.max)
                    {
                        try flush()
                        try startSegment(first: nextSequence)
                    }
                } else {
                    try startSegment(first: nextSequence)
                }
                guard let active, let segment = segments[active.segment] else { break }
                added.append(
                    Entry(
                        key: UInt64(active.segment) << 32 | (nextSequence - segment.first),
                        offset: UInt32(segment.size + end - writtenThrough), length: UInt32(recordSize),
                        jsonBytes: UInt32(unit.jsonBytes), messages: UInt16(unit.messages), state: .ready))
                segments[active.segment]?.live += 1
                SegmentRecord.seal(&bytes, at: start, sequence: nextSequence)
                end = unit.end
                nextSequence += 1
                accepted += 1
            }
            if let marks, accepted > 0, accepted <= marks.count, let active {
                // After the units it covers: a write cut short may keep units without their mark, never the
                // mark without its units.
                let markBytes = marks[accepted - 1]
                bytes.removeSubrange(end...)
                SegmentRecord.append(sequence: nextSequence, payload: UnitCodec.markPayload(markBytes), to: &bytes)
                end = bytes.count
                appendedMark = Mark(
                    sequence: nextSequence, bytes: markBytes, segment: active.segment, isCheckpointed: false)
                nextSequence += 1
            }
            try flush()
        } catch {
            for entry in added[written...] { segments[entry.segment]?.live -= 1 }
            // Written before a new segment was started: undone too, the caller is told the append failed.
            abandon(added[..<written], writtenThrough: nil, mark: nil)
            throw error
        }
        guard accepted > 0, let active else { return WrittenUnits() }
        defer { nextWrite += 1 }
        return WrittenUnits(
            accepted: accepted, entries: added, tenant: number,
            ticket: commit.noteWritten(active.descriptor, records: accepted), number: nextWrite,
            end: (active.segment, segments[active.segment]?.size ?? 0), mark: appendedMark)
    }

    /// Takes whole unclaimed units from the tenant's front: their messages from memory when this process
    /// appended them a moment ago (``recent``), else read back from disk, each record checked again.
    public func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        guard let number = tenantNumbers[tenant] else { return nil }
        var picked: [Int] = []
        var messageCount = 0
        var bytes = 0
        var index = tenants[number].head
        while index < tenants[number].entries.count {
            let entry = tenants[number].entries[index]
            index += 1
            guard entry.state == .ready else { continue }
            let unitBytes = entry.usageBytes - 1 + (picked.isEmpty ? 0 : 1)
            if !picked.isEmpty,
                messageCount + Int(entry.messages) > maximumMessages || bytes + unitBytes > maximumBytes
            {
                break
            }
            picked.append(index - 1)
            messageCount += Int(entry.messages)
            bytes += unitBytes
        }
        guard !picked.isEmpty else { return nil }
        let reads = recallOrRead(picked.map { tenants[number].entries[$0] })
        // A read that fails is tried again by the next claim (nothing is claimed now), up to
        // `readAttempts` times; then its units are set aside, kept for the next open, and reported.
        var failedRead: (any Error)?
        for (position, read) in zip(picked, reads) {
            let key = tenants[number].entries[position].key
            guard case .failed(let error) = read else {
                readFailures[key] = nil
                continue
            }
            readFailures[key, default: 0] += 1
            if readFailures[key]! < Self.readAttempts { failedRead = error }
        }
        if let failedRead { throw failedRead }
        var messages: [SegmentMessage] = []
        messages.reserveCapacity(messageCount)
        var unitEnds: [Int] = []
        var keys: [UInt64?] = []
        var unreadable: [SegmentClaim.Unreadable] = []
        var setAside: (messages: Int, first: (location: String, error: any Error)?) = (0, nil)
        // A record damaged on disk since the store opened is never sent: it is acknowledged (dropped) before
        // anything is marked claimed, so an acknowledgement that cannot be written throws from a claim that
        // took nothing, and every unit stays claimable.
        var positions = picked
        var damagedAt: [Int: (entry: Entry, location: String)] = [:]
        for (index, read) in reads.enumerated() {
            guard case .damaged = read else { continue }
            let entry = tenants[number].entries[picked[index]]
            damagedAt[index] = (entry, "\(segmentName(entry.segment)) offset \(entry.offset)")
        }
        if !damagedAt.isEmpty {
            let pickedKeys = picked.map { tenants[number].entries[$0].key }
            try acknowledge(damagedAt.keys.sorted().map { damagedAt[$0]!.entry.key }, tenant: number)
            // Acknowledging compacts the tenant's entries: the others are found again by key.
            positions = pickedKeys.map { tenants[number].position(of: $0) ?? -1 }
        }
        for (index, read) in reads.enumerated() {
            let position = positions[index]
            let entry =
                damagedAt.isEmpty
                ? tenants[number].entries[position] : damagedAt[index]?.entry ?? tenants[number].entries[position]
            // Made only for a unit that needs it: a claim of 1,000 good units named each one's file (an
            // `NSString` path operation and an interpolation each), a tenth of a batched run's CPU time.
            var location: String { "\(segmentName(entry.segment)) offset \(entry.offset)" }
            switch read {
            case .messages(let unit):
                tenants[number].mark(position, .claimed)
                keys.append(entry.key)
                messages += unit
                unitEnds.append(messages.count)
            case .damaged:
                // Dropped above; reported (a failed outcome, and `status().damage`).
                let location = damagedAt[index]?.location ?? location
                damage.append(SegmentStoreDamage(location: location, byteCount: Int(entry.length), isTornTail: false))
                unreadable.append(
                    SegmentClaim.Unreadable(
                        messageCount: Int(entry.messages),
                        detail: "\(entry.messages) messages at \(location) are damaged on disk: dropped",
                        isKept: false))
            case .failed(let error):
                // Not claimable again in this process (claimed by no one); still held, and read again when the
                // store is next opened.
                readFailures[entry.key] = nil
                tenants[number].mark(position, .claimed)
                setAside.messages += Int(entry.messages)
                setAside.first = setAside.first ?? (location, error)
            }
        }
        if let (location, error) = setAside.first {
            unreadable.append(
                SegmentClaim.Unreadable(
                    messageCount: setAside.messages,
                    detail: "\(setAside.messages) messages from \(location) on could not be read "
                        + "\(Self.readAttempts) times: kept in the store, to be read again when it is next opened",
                    underlying: error, isKept: true))
        }
        guard let first = keys.first, let first else {
            return unreadable.isEmpty
                ? nil : SegmentClaim(id: 0, tenant: tenant, messages: [], unitEnds: [], unreadable: unreadable)
        }
        let id = nextClaim
        nextClaim += 1
        claims[id] = (number, keys)
        return SegmentClaim(
            id: id, tenant: tenant, messages: messages, unitEnds: unitEnds,
            retryState: retryStates[sequence(of: first)] ?? SegmentRetryState(), unreadable: unreadable)
    }

    /// Acknowledges delivered or failed units in `acks.log`; keeps a retry schedule in the checkpoint.
    public func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws
    {
        guard let (number, keys) = claims[claim.id] else { return }
        var start = 0
        var settled: [(index: Int, key: UInt64)] = []
        for (index, end) in claim.unitEnds.enumerated() where index < keys.count {
            if start >= range.lowerBound, end <= range.upperBound, let key = keys[index] {
                settled.append((index, key))
            }
            start = end
        }
        if case .retry(let state) = settlement {
            for (_, key) in settled { retryStates[sequence(of: key)] = state }
            try writeCheckpoint()
            return
        }
        try acknowledge(settled.map(\.key), tenant: number)
        var remaining = keys
        for (index, _) in settled { remaining[index] = nil }
        claims[claim.id] = remaining.allSatisfy { $0 == nil } ? nil : (number, remaining)
    }

    /// Makes the claim's unsettled units claimable again, at the front where they were.
    public func release(_ claim: SegmentClaim) async throws {
        guard let (number, keys) = claims.removeValue(forKey: claim.id) else { return }
        for case let key? in keys {
            if let position = tenants[number].position(of: key) { tenants[number].mark(position, .ready) }
        }
    }

    /// Makes the tenant's claims claimable again (its pipeline starts: nothing of it is in flight), and
    /// reports what the store holds for it and, once, the damage found on open.
    ///
    /// Only that tenant's claims: in a store shared by a group, a tenant opened while another one sends
    /// must not hand the other's batches in flight to its next claim (they would be sent twice, and their
    /// settlement lost).
    public func recover(tenant: String) async throws -> SegmentStoreRecovery {
        for (id, claim) in claims where claim.tenant == tenantNumbers[tenant] {
            for case let key? in claim.keys {
                if let position = tenants[claim.tenant].position(of: key) {
                    tenants[claim.tenant].mark(position, .ready)
                }
            }
            claims[id] = nil
        }
        let reported = Array(damage[damageReported...])
        damageReported = damage.count
        let held = tenantNumbers[tenant].map { tenants[$0].messages } ?? 0
        return SegmentStoreRecovery(messages: held, pausedUntil: pauses[tenant], damage: reported)
    }

    /// What the tenant's units take, from running totals.
    public func usage(tenant: String) async throws -> SegmentStoreUsage {
        var usage = SegmentStoreUsage(storedBytes: storedBytes, pausedUntil: pauses[tenant])
        if let number = tenantNumbers[tenant] {
            usage.messages = tenants[number].messages
            usage.claimableMessages = tenants[number].claimableMessages
            usage.claimableBytes = tenants[number].claimableBytes
        }
        return usage
    }

    /// Keeps the pause in the checkpoint, so a restart honours it.
    public func setPause(until end: Date?, tenant: String) async throws {
        guard pauses[tenant] != end else { return }
        pauses[tenant] = end
        try writeCheckpoint()
    }

    /// A durable store keeps what it holds for the next run: nothing is handed back.
    public func handBack(tenant: String) async throws -> [SegmentMessage] { [] }
}
