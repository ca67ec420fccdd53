#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one door to the host's transport that every tenant of a ``SegmentPipelineGroup`` goes through: a
/// request waits here for a slot from the ``FairScheduler``, so no tenant can take more than its share of
/// the requests in flight, and a paused tenant waits out its pause here without holding a slot.
///
/// A lock around the state machine rather than an actor, so that a cancelled waiter withdraws at once
/// (from its cancellation handler) and a granted request costs no extra hop. Continuations are resumed
/// outside the lock.
final class SendGate: Sendable {
    /// What a waiting request is told.
    private enum Admission: Sendable {
        case granted
        case paused(until: Duration)
    }

    private struct State: Sendable {
        var scheduler: FairScheduler
        var nextTicket = 0
        var waiters: [FairScheduler.Ticket: CheckedContinuation<Admission, any Error>] = [:]

        /// Takes the waiters that the decisions wake, with what each is told.
        mutating func resumptions(
            _ decisions: [FairScheduler.Decision]
        ) -> [(CheckedContinuation<Admission, any Error>, Admission)] {
            decisions.compactMap { decision in
                switch decision {
                case .grant(let ticket):
                    return waiters.removeValue(forKey: ticket).map { ($0, .granted) }
                case .pause(let ticket, let until):
                    return waiters.removeValue(forKey: ticket).map { ($0, .paused(until: until)) }
                }
            }
        }
    }

    private let state: Locked<State>
    let clock: PipelineClock
    /// The wall-clock now, for HTTP-date `Retry-After` answers.
    let wallClock: @Sendable () -> Date

    init(configuration: FairScheduler.Configuration, clock: PipelineClock, wallClock: @escaping @Sendable () -> Date) {
        self.state = Locked(State(scheduler: FairScheduler(configuration: configuration)))
        self.clock = clock
        self.wallClock = wallClock
    }

    /// Registers a tenant's weight and its own limit on requests in flight.
    func register(_ tenant: String, weight: Int, maximumInFlight: Int) {
        state.withLock { $0.scheduler.register(tenant, weight: weight, maximumInFlight: maximumInFlight) }
    }

    /// Forgets an idle tenant.
    func remove(_ tenant: String) {
        state.withLock { _ = $0.scheduler.remove(tenant) }
    }

    /// Requests in flight and requests waiting for a slot now, all tenants together.
    var load: (inFlight: Int, waiting: Int) {
        state.withLock { ($0.scheduler.inFlight, $0.scheduler.pendingCount) }
    }

    /// Bytes granted to a tenant so far.
    func grantedBytes(of tenant: String) -> Int {
        state.withLock { $0.scheduler.grantedBytes(of: tenant) }
    }

    /// A tenant's requests waiting for a slot now.
    func waitingCount(of tenant: String) -> Int {
        state.withLock { $0.scheduler.pendingCount(of: tenant) }
    }

    /// When a tenant's `Retry-After` pause ends, if one is in force.
    func pausedUntil(_ tenant: String) -> Duration? {
        let now = clock.now()
        return state.withLock { $0.scheduler.pausedUntil(tenant, now: now) }
    }

    /// Waits for a slot to send `bytes` for `tenant`, sleeping through its pauses.
    ///
    /// - Returns: The ticket to pass to ``complete(_:pause:)`` once the request is done.
    /// - Throws: `CancellationError` when the task is cancelled while it waits.
    func acquire(tenant: String, bytes: Int) async throws -> FairScheduler.Ticket {
        while true {
            let ticket = state.withLock { state -> FairScheduler.Ticket in
                state.nextTicket &+= 1
                return state.nextTicket
            }
            let admission = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Admission, any Error>) in
                    let now = clock.now()
                    // Registered under the lock, or not at all: a cancellation handler that ran first found
                    // nothing to withdraw, so this is the one place that throws for it.
                    typealias Waiter = CheckedContinuation<Admission, any Error>
                    let (registered, wake) = state.withLock { state -> (Bool, [(Waiter, Admission)]) in
                        guard !Task.isCancelled else { return (false, []) }
                        state.waiters[ticket] = continuation
                        let decisions = state.scheduler.request(ticket, tenant: tenant, bytes: bytes, now: now)
                        return (true, state.resumptions(decisions))
                    }
                    if !registered { continuation.resume(throwing: CancellationError()) }
                    for (waiter, admission) in wake { waiter.resume(returning: admission) }
                }
            } onCancel: {
                withdraw(ticket)
            }
            switch admission {
            case .granted:
                return ticket
            case .paused(let until):
                try await clock.sleepUntil(until)
            }
        }
    }

    /// A granted request is done; `pause` is the `Retry-After` its answer asked for.
    func complete(_ ticket: FairScheduler.Ticket, pause: Duration? = nil) {
        let now = clock.now()
        let wake = state.withLock { $0.resumptions($0.scheduler.complete(ticket, now: now, pause: pause)) }
        for (waiter, admission) in wake { waiter.resume(returning: admission) }
    }

    /// Takes a cancelled request out of the queue; one already granted is left to its caller to complete.
    private func withdraw(_ ticket: FairScheduler.Ticket) {
        let now = clock.now()
        typealias Waiter = CheckedContinuation<Admission, any Error>
        let (cancelled, wake) = state.withLock { state -> (Waiter?, [(Waiter, Admission)]) in
            guard let waiter = state.waiters.removeValue(forKey: ticket) else { return (nil, []) }
            return (waiter, state.resumptions(state.scheduler.cancel(ticket, now: now)))
        }
        cancelled?.resume(throwing: CancellationError())
        for (waiter, admission) in wake { waiter.resume(returning: admission) }
    }
}

/// A tenant's view of the shared transport: every request goes through the ``SendGate`` first, and a
/// `Retry-After` in the answer pauses the tenant at the gate as well as in its pipeline.
struct GatedTransport: SegmentTransport {
    let tenant: String
    let gate: SendGate
    let transport: any SegmentTransport
    let retry: SegmentRetryPolicy

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let ticket = try await gate.acquire(tenant: tenant, bytes: request.body.count)
        let response: SegmentResponse
        do {
            response = try await transport.send(request)
        } catch {
            gate.complete(ticket)
            throw error
        }
        var pause: Duration?
        if SegmentRetryPolicy.disposition(forStatus: response.statusCode) == .retry {
            pause = retry.retryAfter(response.headerField("Retry-After"), now: gate.wallClock())
        }
        gate.complete(ticket, pause: pause)
        return response
    }
}
