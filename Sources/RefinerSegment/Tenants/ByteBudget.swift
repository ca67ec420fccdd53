/// The bound on bytes a ``SegmentPipelineGroup`` holds for all its tenants together (accepted and not yet
/// delivered, failed or handed back), shared fairly: a pure state machine, driven by ``ByteGate``.
///
/// The rules:
/// - A unit is admitted when it fits under the bound and its tenant holds no more than its fair share:
///   the bound divided by the tenants that hold bytes or wait for them. A tenant that holds nothing may
///   always take one unit that fits, so a share smaller than a unit never locks a tenant out.
/// - A unit that is not admitted waits in its tenant's line (first come, first served within a tenant);
///   released bytes admit waiting units round robin across tenants, so a tenant with a large backlog cannot
///   keep the room it frees for itself while others wait.
/// - One tenant alone may use the whole bound.
struct ByteBudget: Sendable {
    /// A waiting unit's number, chosen by the caller.
    typealias Ticket = Int

    private struct Waiter: Sendable {
        var ticket: Ticket
        var bytes: Int
    }

    /// The most bytes held at once.
    let limit: Int
    /// The bytes held now.
    private(set) var used = 0
    private var usedBy: [String: Int] = [:]
    private var lines: [String: [Waiter]] = [:]
    /// The tenants with units waiting, in round-robin order.
    private var order: [String] = []
    private var cursor = 0
    /// Tenants that hold bytes or wait for them.
    private var activeCount = 0

    init(limit: Int) {
        precondition(limit >= 1)
        self.limit = limit
    }

    /// The bytes a tenant holds now.
    func bytes(of tenant: String) -> Int { usedBy[tenant] ?? 0 }

    /// Units waiting now, all tenants together.
    var waitingCount: Int { lines.values.reduce(0) { $0 + $1.count } }

    /// Takes `bytes` for `tenant` now and returns `true`, or puts the unit in line and returns `false` (the
    /// ticket comes out of a later ``release(_:tenant:)`` or ``cancel(_:)``).
    mutating func reserve(_ ticket: Ticket, tenant: String, bytes: Int) -> Bool {
        if reserveNow(bytes, tenant: tenant) { return true }
        if !isActive(tenant) { activeCount += 1 }
        if lines[tenant] == nil { order.append(tenant) }
        lines[tenant, default: []].append(Waiter(ticket: ticket, bytes: bytes))
        return false
    }

    /// Takes `bytes` for `tenant` when the unit may go in now (it fits and nobody of its tenant waits before
    /// it); changes nothing otherwise.
    mutating func reserveNow(_ bytes: Int, tenant: String) -> Bool {
        guard lines[tenant] == nil, fits(tenant: tenant, bytes: bytes, counting: true) else { return false }
        take(bytes, for: tenant)
        return true
    }

    /// Gives back bytes (settled messages, or a unit its pipeline refused); returns the tickets now admitted.
    mutating func release(_ bytes: Int, tenant: String) -> [Ticket] {
        guard bytes > 0, let held = usedBy[tenant] else { return admitWaiting() }
        let rest = max(0, held - bytes)
        used -= held - rest
        usedBy[tenant] = rest == 0 ? nil : rest
        if !isActive(tenant) { activeCount -= 1 }
        return admitWaiting()
    }

    /// Takes a waiting unit out of line; returns whether it was waiting and the tickets now admitted.
    mutating func cancel(_ ticket: Ticket) -> (wasWaiting: Bool, admitted: [Ticket]) {
        for (tenant, line) in lines {
            guard let index = line.firstIndex(where: { $0.ticket == ticket }) else { continue }
            removeWaiter(of: tenant, at: index)
            return (true, admitWaiting())
        }
        return (false, [])
    }

    private func isActive(_ tenant: String) -> Bool { usedBy[tenant] != nil || lines[tenant] != nil }

    /// Whether the unit fits the bound and the tenant's share; `counting` adds the tenant to the active
    /// ones when it is not yet among them.
    private func fits(tenant: String, bytes: Int, counting: Bool) -> Bool {
        guard used + bytes <= limit else { return false }
        let held = usedBy[tenant] ?? 0
        if held == 0 { return true }
        let active = activeCount + (counting && !isActive(tenant) ? 1 : 0)
        return active <= 1 || held + bytes <= limit / active
    }

    private mutating func take(_ bytes: Int, for tenant: String) {
        if !isActive(tenant) { activeCount += 1 }
        used += bytes
        usedBy[tenant, default: 0] += bytes
    }

    private mutating func removeWaiter(of tenant: String, at index: Int) {
        lines[tenant]?.remove(at: index)
        guard lines[tenant]?.isEmpty == true else { return }
        lines[tenant] = nil
        if let position = order.firstIndex(of: tenant) {
            order.remove(at: position)
            if position < cursor { cursor -= 1 }
            if cursor >= order.count { cursor = 0 }
        }
        if !isActive(tenant) { activeCount -= 1 }
    }

    /// Admits the heads of the tenants' lines, round robin, while any fits.
    private mutating func admitWaiting() -> [Ticket] {
        var admitted: [Ticket] = []
        var misses = 0
        while !order.isEmpty, misses < order.count {
            if cursor >= order.count { cursor = 0 }
            let tenant = order[cursor]
            guard let head = lines[tenant]?.first, fits(tenant: tenant, bytes: head.bytes, counting: false) else {
                cursor += 1
                misses += 1
                continue
            }
            misses = 0
            // The waiter is active already, so taking its bytes and leaving the line keep the count right.
            used += head.bytes
            usedBy[tenant, default: 0] += head.bytes
            admitted.append(head.ticket)
            let before = order.count
            removeWaiter(of: tenant, at: 0)
            if order.count == before { cursor += 1 }
        }
        return admitted
    }
}
