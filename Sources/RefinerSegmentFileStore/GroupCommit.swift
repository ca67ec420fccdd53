import Foundation
import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The thread that runs a file store's `fsync`s, so a blocking `fsync` never holds a thread of the
/// cooperative pool, and callers waiting at the same time share one (group commit).
///
/// The store writes its records, notes the file as written (``noteWritten(_:)`` returns a ticket), and waits
/// for the ticket (``wait(for:)``). The thread syncs every file written since its last pass: one pass covers
/// every ticket handed out before it started, and the callers whose writes came while it ran share the
/// next one. With an interval the thread syncs at most that often and no one waits.
///
/// Before a pass that callers wait for, the thread gives the callers the last pass released a moment to
/// write again (at most a quarter of the last `fsync`'s time, 2 ms at most), so that a crowd that waits,
/// writes and waits again shares one `fsync` instead of splitting into two alternating halves (a commit
/// delay, cf. PostgreSQL's `commit_delay`). A lone caller that writes again at once is not held up: the
/// pass starts as soon as as many records as the last pass released (and those already waiting) are
/// written.
final class GroupCommit: @unchecked Sendable {
    // @unchecked: every `var` below is read and written only with `condition` locked; the `let`s are
    // immutable and Sendable.

    /// When the thread syncs.
    enum Mode: Sendable, Equatable {
        /// As soon as something was written; callers wait for it.
        case immediately
        /// At most once per interval; no one waits.
        case interval(Duration)
        /// Never: descriptors are closed as they are retired.
        case never
    }

    private let condition = NSCondition()
    private let mode: Mode
    private let commitDelay: Bool
    private let sync: @Sendable (Int32) -> Int32
    /// The store's directory, for errors.
    private let path: String
    /// Tickets handed out so far; the last one covers every write noted before it.
    private var written: UInt64 = 0
    /// The last ticket a finished pass covered.
    private var synced: UInt64 = 0
    private var dirty: Set<Int32> = []
    /// Records noted since the last pass began (the next pass covers them).
    private var dirtyRecords = 0
    /// Records the next pass waits for (those of the last pass, and those written while it ran), for at
    /// most `delay` after the last pass ended.
    private var expectedRecords = 0
    /// How long the last pass's `fsync`s took.
    private var lastSyncTime = Duration.zero
    /// The thread waits for something to sync.
    private var idle = false
    /// The thread waits out the commit delay.
    private var delaying = false
    private static let maximumDelay = Duration.milliseconds(2)
    /// Written, but no one waits: synced at most once a second (or with the next interval pass).
    private var lazy: Set<Int32> = []
    private var lastLazyPass = Date.distantPast
    private static let lazyInterval = 1.0
    /// Descriptors the store is done with: synced, then closed by the thread.
    private var retired: [Int32] = []
    private var waiters: [(ticket: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    /// The tickets of the last passes whose `fsync` failed, for a caller that starts waiting only after its
    /// pass ended (it must get the error too, not success).
    private var failedPasses: [(tickets: ClosedRange<UInt64>, error: any Error)] = []
    private var stopping = false
    private var started = false
    private var syncs = 0
    private var passes = 0
    private var passTime = Duration.zero
    private var lastPass = Date.distantPast

    /// - Parameter sync: `fsync`, or a stand-in for tests; returns 0 or -1 with `errno` set.
    init(mode: Mode, path: String, sync: @escaping @Sendable (Int32) -> Int32, commitDelay: Bool = true) {
        self.mode = mode
        self.commitDelay = commitDelay
        self.path = path
        self.sync = sync
    }

    /// How many `fsync` calls the thread made.
    var syncCount: Int { locked { syncs } }

    /// How many passes the thread made, and the time their `fsync`s took in all.
    var passStatistics: (count: Int, syncTime: Duration) { locked { (passes, passTime) } }

    /// How many callers wait for a pass.
    var waiting: Int { locked { waiters.count } }

    /// Notes that `records` records were written to `descriptor`; returns the ticket to wait for.
    func noteWritten(_ descriptor: Int32, records: Int = 1) -> UInt64 {
        guard mode != .never else { return 0 }
        return locked {
            startIfNeeded()
            written += 1
            dirtyRecords += records
            dirty.insert(descriptor)
            // Woken only when it waits for this: not once for every append of a crowd while it delays.
            if idle || (delaying && dirtyRecords >= expectedRecords) { condition.signal() }
            return written
        }
    }

    /// Notes that the directory open as `descriptor` has a new entry (a segment file just made): it is synced
    /// by the next pass, the one that syncs the new file's first records, so a record reported durable is
    /// never in a file whose name a power cut could lose.
    func noteChanged(_ descriptor: Int32) {
        guard mode != .never else { return }
        locked {
            startIfNeeded()
            dirty.insert(descriptor)
        }
    }

    /// Notes that `descriptor` was written by someone who does not wait (the acknowledgement log): it is
    /// synced within a second, never holding up a pass that callers wait for.
    func noteWrittenLazily(_ descriptor: Int32) {
        guard mode != .never else { return }
        locked {
            startIfNeeded()
            if lazy.isEmpty { condition.signal() }
            lazy.insert(descriptor)
        }
    }

    /// Hands a descriptor over: synced (when written) and closed by the thread.
    func retire(_ descriptor: Int32) {
        guard mode != .never else {
            close(descriptor)
            return
        }
        locked {
            startIfNeeded()
            retired.append(descriptor)
            condition.signal()
        }
    }

    /// Returns once a pass that started after the ticket was handed out has finished; throws when its
    /// `fsync` failed.
    func wait(for ticket: UInt64) async throws {
        guard mode == .immediately else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let done = locked { () -> Result<Void, any Error>? in
                if synced >= ticket {
                    if let failed = failedPasses.last(where: { $0.tickets.contains(ticket) }) {
                        return .failure(failed.error)
                    }
                    return .success(())
                }
                waiters.append((ticket, continuation))
                return nil
            }
            if let done { continuation.resume(with: done) }
        }
    }

    /// Asks the thread to finish what it has (sync and close what was retired) and end.
    func stop() {
        locked {
            stopping = true
            condition.signal()
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    /// With `condition` locked.
    private func startIfNeeded() {
        guard !started else { return }
        started = true
        let thread = Thread { [self] in run() }
        thread.name = "refiner-segment file store fsync"
        thread.start()
    }

    /// Syncs the descriptors of one pass; the error of one that failed, if any. Several (a segment just
    /// retired and the one after it, the acknowledgement log) are synced at once, one thread each: the
    /// file system commits them together, in about the time of one `fsync` instead of one after another.
    private func syncAll(_ descriptors: [Int32]) -> (any Error)? {
        guard descriptors.count > 1 else {
            guard let descriptor = descriptors.first, sync(descriptor) != 0 else { return nil }
            return FileStoreError.io("fsync", path: path, errno: errno)
        }
        let failed = Locked<Int32?>(nil)
        DispatchQueue.concurrentPerform(iterations: descriptors.count) { index in
            if sync(descriptors[index]) != 0 {
                let code = errno
                failed.withLock { $0 = code }
            }
        }
        return failed.withLock { $0 }.map { FileStoreError.io("fsync", path: path, errno: $0) }
    }

    private func run() {
        condition.lock()
        while true {
            idle = true
            while !stopping && written == synced && retired.isEmpty {
                guard !lazy.isEmpty else {
                    condition.wait()
                    continue
                }
                let due = lastLazyPass.addingTimeInterval(Self.lazyInterval)
                if Date() >= due { break }
                _ = condition.wait(until: due)
            }
            idle = false
            if case .interval(let interval) = mode, !stopping {
                let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
                let next = lastPass.addingTimeInterval(seconds)
                while !stopping && Date() < next { _ = condition.wait(until: next) }
            }
            if stopping && written == synced && retired.isEmpty && lazy.isEmpty { break }
            if commitDelay, mode == .immediately, written != synced, dirtyRecords < expectedRecords {
                // The commit delay: the callers the last pass released write again, or the delay ends.
                let delay = min(lastSyncTime / 4, Self.maximumDelay)
                let end = lastPass.addingTimeInterval(
                    Double(delay.components.attoseconds) / 1e18 + Double(delay.components.seconds))
                delaying = true
                while !stopping && dirtyRecords < expectedRecords && Date() < end { _ = condition.wait(until: end) }
                delaying = false
            }
            let target = written
            let covered = dirtyRecords
            dirtyRecords = 0
            var descriptors = dirty.union(retired)
            if stopping || mode != .immediately || Date() >= lastLazyPass.addingTimeInterval(Self.lazyInterval) {
                descriptors.formUnion(lazy)
                lazy = []
                lastLazyPass = Date()
            }
            let closing = retired
            dirty = []
            retired = []
            condition.unlock()
            let started = ContinuousClock.now
            let failure = syncAll(Array(descriptors))
            let syncTime = ContinuousClock.now - started
            for descriptor in closing { close(descriptor) }
            condition.lock()
            syncs += descriptors.count
            passes += 1
            passTime += syncTime
            if let failure, target > synced {
                failedPasses.append((synced + 1...target, failure))
                if failedPasses.count > 64 { failedPasses.removeFirst() }
            }
            synced = target
            lastPass = Date()
            lastSyncTime = syncTime
            expectedRecords = covered + dirtyRecords
            let ready = waiters.filter { $0.ticket <= target }
            waiters.removeAll { $0.ticket <= target }
            condition.unlock()
            for waiter in ready {
                if let failure { waiter.continuation.resume(throwing: failure) } else { waiter.continuation.resume() }
            }
            condition.lock()
        }
        condition.unlock()
    }
}
