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
/// What is durable when `record` returns depends on ``SyncPolicy`` (Docs/Delivery.md has the table).
public actor FileMessageStore: SegmentMessageStore {
    /// When appended records reach the disk.
    public enum SyncPolicy: Sendable, Hashable {
        /// `fsync` before `append` returns: an accepted message survives a crash of the machine.
        case beforeAcknowledging
        /// `fsync` at most this often: a crash of the process loses nothing, a power cut up to this much.
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

    struct Entry {
        var tenant: String
        var messages: [SegmentMessage]
        var segment: UInt64
        var claimed = false
    }

    struct Segment {
        var path: String
        var size: Int
        var live: Int
    }

    let directory: URL
    let configuration: Configuration
    let lock: DirectoryLock
    var entries: [UInt64: Entry] = [:]
    /// Unsettled sequences by tenant, in order.
    var queues: [String: [UInt64]] = [:]
    var segments: [UInt64: Segment] = [:]
    var active: (id: UInt64, descriptor: Int32)?
    var acks: Int32 = -1
    var nextSequence: UInt64 = 1
    var claims: [UInt64: [UInt64]] = [:]
    var nextClaim: UInt64 = 1
    var retryStates: [UInt64: SegmentRetryState] = [:]
    var pauses: [String: Date] = [:]
    var damage: [SegmentStoreDamage] = []
    var damageReported = false
    var lastSync = ContinuousClock.now

    /// Opens (or creates) the store in `directory` and reads back what it holds.
    ///
    /// - Throws: ``FileStoreError`` when another process holds the directory, or a file cannot be read.
    public init(directory: URL, configuration: Configuration = Configuration()) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.configuration = configuration
        self.lock = try DirectoryLock(directory: directory)
        var state = try Self.open(directory)
        entries = state.entries
        queues = state.queues
        segments = state.segments
        nextSequence = state.nextSequence
        retryStates = state.checkpoint.retryStates
        pauses = state.checkpoint.pauses
        damage = state.damage
        acks = try Self.openAppending(directory.appendingPathComponent("acks.log").path)
        state = .init()
    }

    deinit {
        if let active { close(active.descriptor) }
        if acks >= 0 { close(acks) }
    }

    /// Appends the units that fit under the size bound, as one write (and one `fsync` by the policy).
    public func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        var stored = segments.values.reduce(0) { $0 + $1.size }
        var accepted = 0
        var pending: [UInt8] = []
        var added: [(UInt64, Entry)] = []
        for unit in units {
            let record = SegmentRecord(sequence: nextSequence, payload: UnitCodec.encode(unit, tenant: tenant))
                .encoded()
            guard stored == 0 || stored + record.count <= configuration.maximumBytes else { break }
            if active == nil
                || (segments[active!.id]!.size + pending.count + record.count > configuration.segmentBytes
                    && segments[active!.id]!.size + pending.count > 0)
            {
                try write(&pending)
                try startSegment(first: nextSequence)
            }
            pending += record
            stored += record.count
            added.append((nextSequence, Entry(tenant: tenant, messages: unit, segment: active!.id)))
            nextSequence += 1
            accepted += 1
        }
        try write(&pending)
        try sync(active?.descriptor)
        for (sequence, entry) in added {
            entries[sequence] = entry
            queues[tenant, default: []].append(sequence)
            segments[entry.segment]?.live += 1
        }
        return accepted
    }

    /// Takes whole unclaimed units from the tenant's front.
    public func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        var sequences: [UInt64] = []
        var messages: [SegmentMessage] = []
        var unitEnds: [Int] = []
        var bytes = 0
        for sequence in queues[tenant] ?? [] {
            guard let entry = entries[sequence], !entry.claimed else { continue }
            let unitBytes =
                entry.messages.reduce(entry.messages.count - 1) { $0 + $1.json.count } + (messages.isEmpty ? 0 : 1)
            if !messages.isEmpty,
                messages.count + entry.messages.count > maximumMessages || bytes + unitBytes > maximumBytes
            {
                break
            }
            sequences.append(sequence)
            messages += entry.messages
            unitEnds.append(messages.count)
            bytes += unitBytes
            entries[sequence]?.claimed = true
        }
        guard !sequences.isEmpty else { return nil }
        let id = nextClaim
        nextClaim += 1
        claims[id] = sequences
        return SegmentClaim(
            id: id, tenant: tenant, messages: messages, unitEnds: unitEnds,
            retryState: retryStates[sequences[0]] ?? SegmentRetryState())
    }

    /// Acknowledges delivered or failed units in `acks.log`; keeps a retry schedule in the checkpoint.
    public func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws
    {
        guard let sequences = claims[claim.id] else { return }
        var start = 0
        var settled: [UInt64] = []
        for (index, end) in claim.unitEnds.enumerated() where index < sequences.count {
            if start >= range.lowerBound, end <= range.upperBound { settled.append(sequences[index]) }
            start = end
        }
        if case .retry(let state) = settlement {
            for sequence in settled { retryStates[sequence] = state }
            try writeCheckpoint()
            return
        }
        try acknowledge(settled)
        claims[claim.id] = sequences.filter { !settled.contains($0) }
        if claims[claim.id]?.isEmpty == true { claims[claim.id] = nil }
    }

    /// Makes the claim's unsettled units claimable again, at the front where they were.
    public func release(_ claim: SegmentClaim) async throws {
        for sequence in claims.removeValue(forKey: claim.id) ?? [] { entries[sequence]?.claimed = false }
    }

    /// Reports what the store holds and, once, the damage found on open.
    public func recover(tenant: String) async throws -> SegmentStoreRecovery {
        for (id, sequences) in claims {
            for sequence in sequences { entries[sequence]?.claimed = false }
            claims[id] = nil
        }
        let reported = damageReported ? [] : damage
        damageReported = true
        let held = (queues[tenant] ?? []).reduce(0) { $0 + (entries[$1]?.messages.count ?? 0) }
        return SegmentStoreRecovery(messages: held, pausedUntil: pauses[tenant], damage: reported)
    }

    /// What the tenant's units take.
    public func usage(tenant: String) async throws -> SegmentStoreUsage {
        var usage = SegmentStoreUsage(
            storedBytes: segments.values.reduce(0) { $0 + $1.size }, pausedUntil: pauses[tenant])
        for sequence in queues[tenant] ?? [] {
            guard let entry = entries[sequence] else { continue }
            usage.messages += entry.messages.count
            if !entry.claimed {
                usage.claimableMessages += entry.messages.count
                usage.claimableBytes += entry.messages.reduce(entry.messages.count) { $0 + $1.json.count }
            }
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
