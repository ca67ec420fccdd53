import Foundation

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
    private let sync: @Sendable (Int32) -> Int32
    /// The store's directory, for errors.
    private let path: String
    /// Tickets handed out so far; the last one covers every write noted before it.
    private var written: UInt64 = 0
    /// The last ticket a finished pass covered.
    private var synced: UInt64 = 0
    private var dirty: Set<Int32> = []
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
    private var lastPass = Date.distantPast

    /// - Parameter sync: `fsync`, or a stand-in for tests; returns 0 or -1 with `errno` set.
    init(mode: Mode, path: String, sync: @escaping @Sendable (Int32) -> Int32) {
        self.mode = mode
        self.path = path
        self.sync = sync
    }

    /// How many `fsync` calls the thread made.
    var syncCount: Int { locked { syncs } }

    /// How many callers wait for a pass.
    var waiting: Int { locked { waiters.count } }

    /// Notes that `descriptor` was written; returns the ticket to wait for.
    func noteWritten(_ descriptor: Int32) -> UInt64 {
        guard mode != .never else { return 0 }
        return locked {
            startIfNeeded()
            written += 1
            dirty.insert(descriptor)
            condition.signal()
            return written
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

    private func run() {
        condition.lock()
        while true {
            while !stopping && written == synced && retired.isEmpty {
                guard !lazy.isEmpty else {
                    condition.wait()
                    continue
                }
                let due = lastLazyPass.addingTimeInterval(Self.lazyInterval)
                if Date() >= due { break }
                _ = condition.wait(until: due)
            }
            if case .interval(let interval) = mode, !stopping {
                let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
                let next = lastPass.addingTimeInterval(seconds)
                while !stopping && Date() < next { _ = condition.wait(until: next) }
            }
            if stopping && written == synced && retired.isEmpty && lazy.isEmpty { break }
            let target = written
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
            var failure: (any Error)?
            for descriptor in descriptors where sync(descriptor) != 0 {
                failure = FileStoreError.io("fsync", path: path, errno: errno)
            }
            for descriptor in closing { close(descriptor) }
            condition.lock()
            syncs += descriptors.count
            if let failure, target > synced {
                failedPasses.append((synced + 1...target, failure))
                if failedPasses.count > 64 { failedPasses.removeFirst() }
            }
            synced = target
            lastPass = Date()
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
