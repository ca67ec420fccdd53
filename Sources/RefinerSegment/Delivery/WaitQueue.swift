/// Tasks waiting their turn, resumed first in, first out, each resumed at once when its task is cancelled.
///
/// The pipeline's waiting callers (room in the store, work for a worker, a shutdown) wait here rather than
/// on the actor, so a cancellation handler can resume them synchronously without a task of its own.
final class WaitQueue: Sendable {
    /// How a wait ended.
    enum Wake: Sendable, Equatable {
        case signalled, cancelled
    }

    private struct State {
        var waiters: [(id: Int, continuation: CheckedContinuation<Wake, Never>)] = []
        /// Waits that have an id but have not yet queued (or returned): a cancellation that comes first
        /// moves the id to `cancelled`; every id leaves both sets once its wait has decided.
        var starting: Set<Int> = []
        var cancelled: Set<Int> = []
        var nextID = 0
        /// Bumped by every signal: a wait that saw an older generation returns at once.
        var generation: UInt64 = 0
        /// Set for good by ``signalForever()``: every wait returns at once.
        var isOpen = false
    }

    private let state = Locked(State())

    /// How many tasks wait.
    var count: Int { state.withLock { $0.waiters.count } }

    /// Whether ``signalForever()`` was called.
    var isOpen: Bool { state.withLock { $0.isOpen } }

    /// Whether no task waits, and whether ``signalForever()`` was called, under one lock.
    var isEmptyAndShut: (isEmpty: Bool, isOpen: Bool) { state.withLock { ($0.waiters.isEmpty, $0.isOpen) } }

    /// Ids a cancellation or a start left behind: always 0 between waits (a test checks it).
    var bookkeeping: Int { state.withLock { $0.starting.count + $0.cancelled.count } }

    /// The generation now: pass it to ``wait(since:atFront:)`` to miss no signal given in between.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// ``generation`` and ``count`` under one lock.
    var generationAndCount: (generation: UInt64, count: Int) {
        state.withLock { ($0.generation, $0.waiters.count) }
    }

    /// Waits for a signal given after `generation` (any signal, when `nil`), or for cancellation.
    ///
    /// - Parameters:
    ///   - atFront: Wait before the others (a caller that already had its turn and keeps it).
    ///   - inTurn: A signal missed since `generation` counts only when no one else waits (a queue of
    ///     callers served in order); otherwise it always counts.
    func wait(since generation: UInt64? = nil, atFront: Bool = false, inTurn: Bool = false) async -> Wake {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            state.starting.insert(state.nextID)
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
                let now: Wake? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return .cancelled }
                    state.starting.remove(id)
                    if state.isOpen { return .signalled }
                    if let generation, state.generation != generation, !inTurn || state.waiters.isEmpty {
                        return .signalled
                    }
                    if atFront {
                        state.waiters.insert((id, continuation), at: 0)
                    } else {
                        state.waiters.append((id, continuation))
                    }
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Wake, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    // Not queued yet: the wait returns as cancelled when it gets there. Already resumed
                    // (signalled): nothing to do, and nothing kept.
                    if state.starting.remove(id) != nil { state.cancelled.insert(id) }
                    return nil
                }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume(returning: .cancelled)
        }
    }

    /// Resumes the first waiter; returns whether there was one.
    @discardableResult
    func signalFirst() -> Bool {
        let first = state.withLock { state -> CheckedContinuation<Wake, Never>? in
            state.generation &+= 1
            return state.waiters.isEmpty ? nil : state.waiters.removeFirst().continuation
        }
        first?.resume(returning: .signalled)
        return first != nil
    }

    /// Resumes every waiter.
    func signalAll() {
        let all = state.withLock { state -> [CheckedContinuation<Wake, Never>] in
            state.generation &+= 1
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in all { continuation.resume(returning: .signalled) }
    }

    /// Resumes every waiter, now and later: the event happened for good (a shutdown was asked for).
    func signalForever() {
        state.withLock { $0.isOpen = true }
        signalAll()
    }
}
