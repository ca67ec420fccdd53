import Foundation
import RefinerSegment

/// A clock that only moves when told to, so retries, pauses and deadlines run in virtual time: a test of a
/// 12-hour retry bound takes milliseconds and never depends on the machine's speed.
///
/// Two modes:
/// - ``Mode/automatic``: every sleep moves the clock forward by its duration at once and returns. Exact
///   when one task sleeps at a time (a pipeline with one batch in flight, no shutdown deadline pending).
/// - ``Mode/manual``: sleepers wait until ``advance(by:)`` moves the clock past their wake time; use
///   ``waitForSleepers(_:)`` to know that the code under test has gone to sleep.
///
/// Every requested sleep is kept in ``sleeps``, in order. Sleeps throw `CancellationError` when their task
/// is cancelled. Pass ``deliveryClock`` to the pipeline.
public final class VirtualClock: Sendable {
    /// How sleeps pass.
    public enum Mode: Sendable, Hashable {
        /// A sleep moves the clock forward by its duration at once.
        case automatic
        /// A sleep waits for ``VirtualClock/advance(by:)``.
        case manual
    }

    private struct Sleeper {
        var id: Int
        var wake: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleeps: [Duration] = []
        var sleepers: [Sleeper] = []
        var nextID = 0
        var sleeperWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// How sleeps pass.
    public let mode: Mode
    private let state: LockedState<State>

    /// Creates a clock at `start` (by default 2026-11-25T10:00:00Z).
    public init(start: Date = Date(timeIntervalSince1970: 1_795_600_800), mode: Mode = .automatic) {
        self.mode = mode
        self.state = LockedState(State(now: start))
    }

    /// The clock's current time.
    public var now: Date { state.withLock { $0.now } }

    /// Every sleep requested so far, in order (cancelled ones included).
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }

    /// How many tasks are sleeping now (manual mode).
    public var pendingSleepers: Int { state.withLock { $0.sleepers.count } }

    /// The clock as the pipeline takes it.
    public var deliveryClock: DeliveryClock {
        DeliveryClock(now: { self.now }, sleep: { try await self.sleep(for: $0) })
    }

    /// Sleeps in virtual time.
    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        let interval = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        switch mode {
        case .automatic:
            state.withLock {
                $0.sleeps.append(duration)
                $0.now = $0.now.addingTimeInterval(max(0, interval))
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
                        state.sleeps.append(duration)
                        if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                            return []
                        }
                        let wake = state.now.addingTimeInterval(max(0, interval))
                        state.sleepers.append(Sleeper(id: id, wake: wake, continuation: continuation))
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
        let interval = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        let due: [Sleeper] = state.withLock { state in
            state.now = state.now.addingTimeInterval(max(0, interval))
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
}
