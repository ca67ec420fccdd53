/// The group's global byte bound as something a caller can wait on: a lock around ``ByteBudget`` and the
/// continuations of the callers in line. Cancelling a waiting caller withdraws its unit at once.
final class ByteGate: Sendable {
    private struct State: Sendable {
        var budget: ByteBudget
        var nextTicket = 0
        var waiters: [ByteBudget.Ticket: CheckedContinuation<Void, any Error>] = [:]

        mutating func take(_ tickets: [ByteBudget.Ticket]) -> [CheckedContinuation<Void, any Error>] {
            tickets.compactMap { waiters.removeValue(forKey: $0) }
        }
    }

    private let state: Locked<State>

    init(limit: Int) {
        state = Locked(State(budget: ByteBudget(limit: limit)))
    }

    /// The bytes held now, all tenants together, and the units waiting for room.
    var load: (bytes: Int, waiting: Int) {
        state.withLock { ($0.budget.used, $0.budget.waitingCount) }
    }

    /// The bytes a tenant holds now.
    func bytes(of tenant: String) -> Int {
        state.withLock { $0.budget.bytes(of: tenant) }
    }

    /// Takes `bytes` for `tenant` when they fit now; `false` when the caller would have to wait.
    func tryReserve(_ bytes: Int, tenant: String) -> Bool {
        state.withLock { $0.budget.reserveNow(bytes, tenant: tenant) }
    }

    /// Takes `bytes` for `tenant`, waiting in line until they fit.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits; nothing is taken then.
    func reserve(_ bytes: Int, tenant: String) async throws {
        let ticket = state.withLock { state -> ByteBudget.Ticket in
            state.nextTicket &+= 1
            return state.nextTicket
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Registered under the lock, or not at all (see SendGate.acquire).
                let outcome = state.withLock { state -> Bool? in
                    guard !Task.isCancelled else { return nil }
                    if state.budget.reserve(ticket, tenant: tenant, bytes: bytes) { return true }
                    state.waiters[ticket] = continuation
                    return false
                }
                switch outcome {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume()
                case false?: break
                }
            }
        } onCancel: {
            typealias Waiter = CheckedContinuation<Void, any Error>
            let (cancelled, admitted) = state.withLock { state -> (Waiter?, [Waiter]) in
                guard let waiter = state.waiters.removeValue(forKey: ticket) else { return (nil, []) }
                return (waiter, state.take(state.budget.cancel(ticket).admitted))
            }
            cancelled?.resume(throwing: CancellationError())
            for waiter in admitted { waiter.resume() }
        }
    }

    /// Gives back bytes a tenant held; waiting callers that now fit go on.
    func release(_ bytes: Int, tenant: String) {
        guard bytes > 0 else { return }
        let admitted = state.withLock { $0.take($0.budget.release(bytes, tenant: tenant)) }
        for waiter in admitted { waiter.resume() }
    }
}
