/// Who may send next: deficit round robin by bytes over the tenants of a ``SegmentPipelineGroup``, under a
/// global cap on requests in flight.
///
/// A pure state machine (no clock, no tasks): the group's ``SendGate`` feeds it requests, completions and
/// cancellations, and does what its ``Decision``s say. Time comes in as `Duration`s since the group began.
///
/// The rules:
/// - A tenant is *eligible* when it has a pending request, fewer requests in flight than its own limit (one
///   by default, so its batches keep their order) and no `Retry-After` pause in force.
/// - A pending request is granted when a global slot is free and its tenant's deficit covers its bytes; the
///   deficit pays for it. Among tenants whose deficit covers their request, the one with the most credit
///   left for its weight goes first (ties: the next in rotation after the last grant), so bytes, not
///   requests, are what is shared.
/// - When no eligible tenant can pay but a tenant whose own requests are all in flight still has credit,
///   the round is not over: the eligible tenant with the most credit for its weight borrows (its deficit
///   goes below zero and is paid back from its next rounds). So the transport is never left idle, and a
///   tenant that is busy at the moment a slot frees (with one batch in flight it always is, right after its
///   own request completes) does not see everyone else earn a new round meanwhile.
/// - Otherwise a new round starts: every tenant in the rotation earns `quantum × weight` bytes (as many
///   rounds at once as the cheapest eligible request needs).
/// - A tenant keeps its deficit while it is busy (a request pending or in flight), and for one round after
///   it fell idle, because a tenant with one batch in flight is never pending at the moment its own request
///   completes; a tenant idle at two round starts leaves the rotation and its deficit goes to zero, so
///   idleness never banks credit. The deficit is capped at two rounds' worth (or the request it waits for).
/// - A paused tenant leaves the rotation until its pause ends: its pending requests are sent back with the
///   time the pause ends (the gate sleeps until then and asks again), and so are new ones during the pause.
///   A failing tenant leaves it too, without the scheduler's help: its pipeline waits out the backoff
///   before it asks for a slot again.
struct FairScheduler: Sendable {
    /// The scheduler's knobs.
    struct Configuration: Sendable, Hashable {
        /// The bytes a tenant of weight 1 earns per round.
        var quantum: Int
        /// The most requests in flight, all tenants together.
        var maximumInFlight: Int
    }

    /// A request's number, chosen by the caller and unique among the requests it has not finished.
    typealias Ticket = Int

    /// What the gate must do for a request that was waiting.
    enum Decision: Sendable, Hashable {
        /// Send the request now; report ``FairScheduler/complete(_:now:pause:)`` when it is done.
        case grant(Ticket)
        /// The tenant is paused until this time: wait, then ask again with a new request.
        case pause(Ticket, until: Duration)
    }

    private struct Request: Sendable {
        var ticket: Ticket
        var bytes: Int
    }

    private struct Tenant: Sendable {
        var weight: Int
        var maximumInFlight: Int
        var deficit = 0
        var pending: [Request] = []
        var inFlight = 0
        var pausedUntil: Duration?
        /// Round starts seen while the tenant had nothing pending and nothing in flight.
        var idleRounds = 0
        var isInRotation = false
        /// Bytes granted so far (for the group's counters and for tests).
        var grantedBytes = 0

        var isBusy: Bool { !pending.isEmpty || inFlight > 0 }
    }

    /// The most rounds of credit a busy tenant keeps: enough that a tenant with small batches, which can
    /// only use its credit one batch at a time, is not robbed of it by rounds that start while its batch is
    /// in flight; few enough that no tenant can bank a burst.
    static let bankedRounds = 8

    let configuration: Configuration
    /// Every known tenant's state, by slot; ids are looked up once per call, the loops run on slots.
    private var tenants: [Tenant] = []
    private var slots: [String: Int] = [:]
    private var freeSlots: [Int] = []
    /// The slots of the tenants in rotation, in round-robin order.
    private var rotation: [Int] = []
    /// Where the next search for a tenant that can pay starts, as an index into ``rotation``.
    private var cursor = 0
    /// The tenant slot of each granted request.
    private var granted: [Ticket: Int] = [:]
    /// The tenant slot of each waiting request.
    private var waiting: [Ticket: Int] = [:]
    /// Requests in flight, all tenants together.
    private(set) var inFlight = 0

    init(configuration: Configuration) {
        precondition(configuration.quantum >= 1 && configuration.maximumInFlight >= 1)
        self.configuration = configuration
    }

    /// Requests waiting for a slot, all tenants together.
    var pendingCount: Int { waiting.count }

    /// Bytes granted to a tenant so far.
    func grantedBytes(of tenant: String) -> Int { slots[tenant].map { tenants[$0].grantedBytes } ?? 0 }

    /// A tenant's requests waiting for a slot now.
    func pendingCount(of tenant: String) -> Int { slots[tenant].map { tenants[$0].pending.count } ?? 0 }

    /// When the tenant's `Retry-After` pause ends, if one is in force at `now`.
    func pausedUntil(_ tenant: String, now: Duration) -> Duration? {
        guard let slot = slots[tenant] else { return nil }
        return pausedUntil(slot: slot, now: now)
    }

    private func pausedUntil(slot: Int, now: Duration) -> Duration? {
        guard let until = tenants[slot].pausedUntil, until > now else { return nil }
        return until
    }

    /// Adds a tenant, or changes the weight and limit of a known one.
    ///
    /// - Parameters:
    ///   - weight: Its share relative to others (at least 1).
    ///   - maximumInFlight: The most requests it may have in flight (its pipeline's batches in flight).
    mutating func register(_ tenant: String, weight: Int = 1, maximumInFlight: Int = 1) {
        _ = slot(of: tenant, weight: weight, maximumInFlight: maximumInFlight)
    }

    @discardableResult
    private mutating func slot(of tenant: String, weight: Int? = nil, maximumInFlight: Int? = nil) -> Int {
        precondition((weight ?? 1) >= 1 && (maximumInFlight ?? 1) >= 1)
        if let slot = slots[tenant] {
            if let weight { tenants[slot].weight = weight }
            if let maximumInFlight { tenants[slot].maximumInFlight = maximumInFlight }
            return slot
        }
        let state = Tenant(weight: weight ?? 1, maximumInFlight: maximumInFlight ?? 1)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            tenants[slot] = state
        } else {
            slot = tenants.count
            tenants.append(state)
        }
        slots[tenant] = slot
        return slot
    }

    /// Forgets a tenant that has nothing pending and nothing in flight; returns whether it did.
    @discardableResult
    mutating func remove(_ tenant: String) -> Bool {
        guard let slot = slots[tenant], !tenants[slot].isBusy else { return false }
        leaveRotation(slot)
        slots[tenant] = nil
        tenants[slot] = Tenant(weight: 1, maximumInFlight: 1)
        freeSlots.append(slot)
        return true
    }

    /// A tenant asks to send `bytes`; the decisions say which waiting requests (this one included) go now.
    ///
    /// An unknown tenant is registered with weight 1 and one request in flight.
    mutating func request(_ ticket: Ticket, tenant: String, bytes: Int, now: Duration) -> [Decision] {
        let slot = slot(of: tenant)
        if let until = pausedUntil(slot: slot, now: now) { return [.pause(ticket, until: until)] }
        tenants[slot].pausedUntil = nil
        tenants[slot].pending.append(Request(ticket: ticket, bytes: max(0, bytes)))
        tenants[slot].idleRounds = 0
        waiting[ticket] = slot
        if !tenants[slot].isInRotation {
            tenants[slot].isInRotation = true
            rotation.append(slot)
        }
        return schedule(now: now)
    }

    /// A granted request is done. With `pause`, its tenant is paused for that long from `now` (a
    /// `Retry-After`): its waiting requests come back as ``Decision/pause(_:until:)``.
    mutating func complete(_ ticket: Ticket, now: Duration, pause: Duration? = nil) -> [Decision] {
        guard let slot = granted.removeValue(forKey: ticket) else { return [] }
        inFlight -= 1
        tenants[slot].inFlight -= 1
        var decisions: [Decision] = []
        if let pause, pause > .zero {
            var state = tenants[slot]
            let until = max(now + pause, state.pausedUntil ?? now)
            state.pausedUntil = until
            decisions = state.pending.map { .pause($0.ticket, until: until) }
            for request in state.pending { waiting[request.ticket] = nil }
            state.pending = []
            state.deficit = 0
            tenants[slot] = state
            leaveRotation(slot)
        }
        return decisions + schedule(now: now)
    }

    /// A request gave up: a pending one is withdrawn, a granted one counts as complete.
    mutating func cancel(_ ticket: Ticket, now: Duration) -> [Decision] {
        if granted[ticket] != nil { return complete(ticket, now: now) }
        guard let slot = waiting.removeValue(forKey: ticket),
            let index = tenants[slot].pending.firstIndex(where: { $0.ticket == ticket })
        else { return [] }
        tenants[slot].pending.remove(at: index)
        return schedule(now: now)
    }

    // MARK: Deficit round robin

    /// Grants requests while slots are free and some eligible tenant can pay, starting rounds as needed.
    private mutating func schedule(now: Duration) -> [Decision] {
        var decisions: [Decision] = []
        while inFlight < configuration.maximumInFlight {
            if let index = nextPayingTenant() {
                decisions.append(.grant(grant(at: index)))
            } else if isRoundOpen, let index = nextTenant(payingOnly: false) {
                // Someone busy still has credit this round: rather than a new round for everyone (which would
                // hand the waiting tenants credit the busy ones have not spent yet), the next tenant borrows.
                decisions.append(.grant(grant(at: index)))
            } else if let rounds = roundsUntilSomeonePays() {
                startRounds(rounds)
            } else {
                break
            }
        }
        return decisions
    }

    private func isEligible(_ state: Tenant) -> Bool {
        !state.pending.isEmpty && state.inFlight < state.maximumInFlight
    }

    /// The rotation index of the eligible tenant whose deficit covers its request and, among those, has the
    /// most credit left for its weight; ties go to the first from the cursor on.
    ///
    /// Most credit first, rather than the next payer in rotation: a tenant with one batch in flight can only
    /// spend its credit a batch at a time, and a tenant with small batches spends slowly, so taking plain
    /// turns would hand the bytes out per request instead of per byte.
    private func nextPayingTenant() -> Int? { nextTenant(payingOnly: true) }

    /// The eligible tenant with the most credit left for its weight (ties: the first from the cursor on),
    /// among those whose deficit covers their request when `payingOnly`.
    private func nextTenant(payingOnly: Bool) -> Int? {
        let count = rotation.count
        var best: (index: Int, deficit: Int, weight: Int)?
        for step in 0..<count {
            let index = (cursor + step) % count
            let state = tenants[rotation[index]]
            guard isEligible(state), !payingOnly || state.deficit >= state.pending[0].bytes else { continue }
            if let current = best, state.deficit * current.weight <= current.deficit * state.weight { continue }
            best = (index, state.deficit, state.weight)
        }
        return best?.index
    }

    private mutating func grant(at index: Int) -> Ticket {
        let slot = rotation[index]
        let request = tenants[slot].pending.removeFirst()
        tenants[slot].deficit -= request.bytes
        tenants[slot].inFlight += 1
        tenants[slot].grantedBytes += request.bytes
        waiting[request.ticket] = nil
        granted[request.ticket] = slot
        inFlight += 1
        cursor = (index + 1) % rotation.count
        return request.ticket
    }

    /// Whether a tenant that cannot send now (its own requests in flight) still has credit this round.
    private var isRoundOpen: Bool {
        rotation.contains { slot in
            let state = tenants[slot]
            return state.inFlight > 0 && state.deficit > 0 && !isEligible(state)
        }
    }

    /// How many rounds the cheapest eligible request still needs, or `nil` when no tenant is eligible.
    private func roundsUntilSomeonePays() -> Int? {
        var fewest: Int?
        for slot in rotation {
            let state = tenants[slot]
            guard isEligible(state) else { continue }
            let earning = configuration.quantum * state.weight
            let missing = max(0, state.pending[0].bytes - state.deficit)
            let rounds = max(1, (missing + earning - 1) / earning)
            fewest = min(fewest ?? rounds, rounds)
        }
        return fewest
    }

    private mutating func startRounds(_ rounds: Int) {
        var leaving: [Int] = []
        for slot in rotation {
            var state = tenants[slot]
            let earning = configuration.quantum * state.weight
            if state.isBusy {
                state.idleRounds = 0
                let needed = state.pending.first?.bytes ?? 0
                state.deficit = min(state.deficit + rounds * earning, max(Self.bankedRounds * earning, needed))
            } else if state.idleRounds == 0 && rounds == 1 {
                // Idle for the first time at a round start: most likely between two of its own batches.
                state.idleRounds = 1
                state.deficit = min(state.deficit + earning, 2 * earning)
            } else {
                state.deficit = 0
                leaving.append(slot)
            }
            tenants[slot] = state
        }
        for slot in leaving { leaveRotation(slot) }
    }

    private mutating func leaveRotation(_ slot: Int) {
        guard tenants[slot].isInRotation, let index = rotation.firstIndex(of: slot) else { return }
        rotation.remove(at: index)
        if index < cursor { cursor -= 1 }
        if cursor >= rotation.count { cursor = 0 }
        tenants[slot].isInRotation = false
        tenants[slot].idleRounds = 0
    }
}
