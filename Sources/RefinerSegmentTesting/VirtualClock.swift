import Foundation
import RefinerSegment

/// A `Clock` that only moves when told to, so retries, pauses, linger and grace periods run in virtual
/// time: a test of a 12-hour retry bound takes milliseconds and never depends on the machine's speed.
///
/// Two modes:
/// - ``Mode/automatic``: every sleep moves the clock forward to its deadline at once and returns. Exact
///   when one task sleeps at a time (a pipeline with one batch in flight and no linger).
/// - ``Mode/manual``: sleepers wait until ``advance(by:)`` moves the clock past their deadline; use
///   ``waitForSleepers(_:)`` to know that the code under test has gone to sleep.
///
/// Every requested sleep is kept in ``sleeps``, in order. Sleeps throw `CancellationError` when their task
/// is cancelled. Pass the clock itself as the pipeline's `clock` and ``wallClock`` as its `wallClock`, so
/// that `sentAt` and HTTP-date `Retry-After` move with it.
public final class VirtualClock: Clock, Sendable {
    /// A point on the virtual clock: the time passed since the clock was made.
    public struct Instant: InstantProtocol, Hashable, Sendable {
        /// The time since the clock's start.
        public var offset: Duration

        /// Creates an instant at `offset` from the start.
        public init(offset: Duration) { self.offset = offset }

        /// The instant `duration` later.
        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }

        /// The duration from this instant to `other`.
        public func duration(to other: Instant) -> Duration { other.offset - offset }

        /// Whether `lhs` comes first.
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    /// How sleeps pass.
    public enum Mode: Sendable, Hashable {
        /// A sleep moves the clock forward to its deadline at once.
        case automatic
        /// A sleep waits for ``VirtualClock/advance(by:)``.
        case manual
    }

    private struct Sleeper {
        var id: Int
        var wake: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleeps: [Duration] = []
        var sleepers: [Sleeper] = []
        var nextID = 0
        var sleeperWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// How sleeps pass.
    public let mode: Mode
    /// The wall-clock time at the clock's start.
    public let start: Date
    private let state: LockedState<State>

    /// Creates a clock whose wall time starts at `start` (by default 2026-11-25T10:00:00Z).
    public init(start: Date = Date(timeIntervalSince1970: 1_795_600_800), mode: Mode = .automatic) {
        self.mode = mode
        self.start = start
        self.state = LockedState(State())
    }

    /// The clock's current instant.
    public var now: Instant { state.withLock { $0.now } }

    /// The smallest step: a nanosecond.
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// The wall-clock time now: ``start`` plus the time passed.
    public var date: Date { start.addingTimeInterval(Self.seconds(now.offset)) }

    /// The wall clock to pass beside this clock: ``date`` at each call.
    public var wallClock: @Sendable () -> Date { { self.date } }

    /// Every sleep requested so far, in order (cancelled ones included), as the time it asked to wait.
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    /// How many tasks are sleeping now (manual mode).
    public var pendingSleepers: Int { state.withLock { $0.sleepers.count } }

    /// Sleeps in virtual time until `deadline`.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        switch mode {
        case .automatic:
            state.withLock {
                $0.sleeps.append(max(.zero, $0.now.duration(to: deadline)))
                if deadline > $0.now { $0.now = deadline }
            }
            await Task.yield()
            try Task.checkCancellation()
        case .manual:
            let id = state.withLock { state -> Int in
                state.nextID += 1
                return state.nextID
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
                        state.sleeps.append(max(.zero, state.now.duration(to: deadline)))
                        if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                            return []
                        }
                        if deadline <= state.now {
                            continuation.resume()
                            return []
                        }
                        state.sleepers.append(Sleeper(id: id, wake: deadline, continuation: continuation))
                        return Self.takeSatisfiedWaiters(&state)
                    }
                    for waiter in ready { waiter.resume() }
                }
            } onCancel: {
                let sleeper = state.withLock { state -> Sleeper? in
                    guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.sleepers.remove(at: index)
                }
                sleeper?.continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Moves the clock forward and wakes, in wake order, every sleeper due by then (manual mode; in
    /// automatic mode it only moves the clock).
    public func advance(by duration: Duration) {
        let due: [Sleeper] = state.withLock { state in
            state.now = state.now.advanced(by: max(.zero, duration))
            let now = state.now
            let due = state.sleepers.filter { $0.wake <= now }.sorted { $0.wake < $1.wake }
            state.sleepers.removeAll { $0.wake <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Suspends until at least `count` tasks are sleeping (manual mode).
    public func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.sleeperWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private static func takeSatisfiedWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let count = state.sleepers.count
        let ready = state.sleeperWaiters.filter { $0.count <= count }.map(\.continuation)
        state.sleeperWaiters.removeAll { $0.count <= count }
        return ready
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
