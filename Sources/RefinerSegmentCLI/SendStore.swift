import Foundation
import RefinerSegment
import RefinerSegmentFileStore

/// The durable store under `send --store DIR`: a ``FileMessageStore`` with the two things `send` adds, each
/// written so that no crash loses work or does it twice where that can be avoided.
///
/// - **The input cursor is written with the append.** Each append carries the ``InputCursor`` of its last
///   unit as the store's mark, in the same write (``FileMessageStore/append(_:tenant:marks:)``), so no crash
///   leaves units stored and the cursor before them (the re-run would record them again: sent and counted
///   twice). An append cut short inside its write may leave units without their mark; the re-run that
///   resumes drops them (``FileMessageStore/discardUnitsAfterMark()``) and reads them again.
/// - **The failed file comes before the settlement.** Messages that failed for good are appended to the
///   failed file (synced), and only then settled in the store. A crash between the two leaves them in the
///   store: the re-run fails them again and writes them again, never neither.
actor SendStore: SegmentMessageStore {
    let directory: String
    let base: FileMessageStore
    /// Where a tenant's messages that failed for good go (`send --tenants` has a failed file per tenant).
    private let undelivered: @Sendable (String) -> UndeliveredSink?
    /// The cursors of the units the reading loop is about to record, in order (`nil` where not known); an
    /// append takes as many as it accepted units from the front.
    nonisolated let nextCursors = Locked<[InputCursor?]>([])
    /// Why the copy of the cursor (`input-cursor.json`) could not be written, the first time.
    nonisolated let cursorFailure = Locked<String?>(nil)
    private var cursorCopyFailed = false
    /// The mark a unit without a cursor of its own carries: the latest one (a pipe's units keep an earlier
    /// file's cursor, which they do not move).
    private var carried: [UInt8]
    /// Tests only: `REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS=N` makes the process `SIGKILL` itself right after
    /// its N-th append returns, the one moment a crash test cannot hit by timing.
    private let killAfterAppends = ProcessInfo.processInfo.environment["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS"]
        .flatMap { Int($0) }
    /// Tests only: `REFINER_SEGMENT_TEST_FAIL_APPEND=N` makes the N-th append throw (once, before it writes
    /// anything), as a full disk or an I/O error would, which a test cannot bring about reliably.
    private let failingAppend = ProcessInfo.processInfo.environment["REFINER_SEGMENT_TEST_FAIL_APPEND"]
        .flatMap { Int($0) }
    private var appendCalls = 0
    private var appends = 0

    /// Opens the store in `directory`.
    ///
    /// - Throws: ``ToolError`` naming the directory, and the pid of the process that holds it when another
    ///   one does.
    init(directory: String, undelivered: UndeliveredSink) throws {
        try self.init(directory: directory) { _ in undelivered }
    }

    /// Opens the store in `directory` for many tenants, each with its own failed file (`nil` for a tenant
    /// that has none: its failed messages stay in the store).
    ///
    /// - Throws: As ``init(directory:undelivered:)``.
    init(directory: String, undelivered: @escaping @Sendable (String) -> UndeliveredSink?) throws {
        // Tests only: `REFINER_SEGMENT_TEST_STORE_MAX_BYTES=N` bounds the store at N bytes, so a test fills it
        // with a few messages (the default bound is 256 MiB).
        var configuration = FileMessageStore.Configuration()
        if let bound = ProcessInfo.processInfo.environment["REFINER_SEGMENT_TEST_STORE_MAX_BYTES"].flatMap({ Int($0) }),
            bound > 0
        {
            configuration.maximumBytes = bound
        }
        do {
            base = try FileMessageStore(directory: URL(fileURLWithPath: directory), configuration: configuration)
        } catch {
            throw ToolError("--store \(directory): \(error)")
        }
        self.directory = directory
        self.undelivered = undelivered
        carried = base.markAtOpen ?? []
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        // Taken before the append, so that a second append under way meanwhile takes the cursors after these;
        // what this one does not accept goes back to the front.
        let cursors = nextCursors.withLock { cursors in
            defer { cursors.removeFirst(min(units.count, cursors.count)) }
            return Array(cursors.prefix(units.count))
        }
        // Each unit's mark: its cursor, or the last known before it (which covers less: never too much).
        var marks: [[UInt8]] = []
        marks.reserveCapacity(units.count)
        var latest = carried
        for index in units.indices {
            if index < cursors.count, let cursor = cursors[index] { latest = cursor.encoded }
            marks.append(latest)
        }
        let accepted: Int
        do {
            appendCalls += 1
            if appendCalls == failingAppend {
                throw ToolError("--store \(directory): cannot write: Input/output error (test hook)")
            }
            accepted = try await base.append(units, tenant: tenant, marks: marks)
        } catch {
            nextCursors.withLock { $0.insert(contentsOf: cursors, at: 0) }
            throw error
        }
        appends += 1
        if appends == killAfterAppends { raise(SIGKILL) }
        if accepted < cursors.count { nextCursors.withLock { $0.insert(contentsOf: cursors[accepted...], at: 0) } }
        guard accepted > 0 else { return accepted }
        carried = marks[accepted - 1]
        guard let cursor = cursors.prefix(accepted).last(where: { $0 != nil }) ?? nil else { return accepted }
        do {
            try cursor.write(in: directory)
        } catch {
            // Noted once: it is only a copy (the store keeps the cursor).
            if !cursorCopyFailed { cursorFailure.withLock { $0 = "\(error)" } }
            cursorCopyFailed = true
        }
        return accepted
    }

    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        try await base.claim(tenant: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
    }

    func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws {
        if case .failed = settlement {
            guard let sink = undelivered(claim.tenant), sink.save(Self.units(of: claim, in: range)) else {
                // Written nowhere: the store keeps them, and a later run fails them and writes them again.
                throw ToolError("\(range.count) failed messages could not be written anywhere; the store keeps them")
            }
        }
        try await base.settle(claim, messages: range, as: settlement)
    }

    func release(_ claim: SegmentClaim) async throws { try await base.release(claim) }

    func recover(tenant: String) async throws -> SegmentStoreRecovery { try await base.recover(tenant: tenant) }

    func usage(tenant: String) async throws -> SegmentStoreUsage { try await base.usage(tenant: tenant) }

    func setPause(until end: Date?, tenant: String) async throws { try await base.setPause(until: end, tenant: tenant) }

    func handBack(tenant: String) async throws -> [SegmentMessage] { try await base.handBack(tenant: tenant) }

    /// The messages of a claim at `range`, grouped by the units they belong to (a unit stays one line of the
    /// failed file).
    static func units(of claim: SegmentClaim, in range: Range<Int>) -> [[SegmentMessage]] {
        var units: [[SegmentMessage]] = []
        var start = 0
        for end in claim.unitEnds {
            let (lower, upper) = (max(start, range.lowerBound), min(end, range.upperBound))
            if lower < upper { units.append(Array(claim.messages[lower..<upper])) }
            start = end
        }
        return units
    }
}
