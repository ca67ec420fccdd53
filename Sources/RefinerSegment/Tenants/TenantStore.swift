#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One tenant's view of the ``SegmentPipelineGroup``'s shared message store: every call goes to the shared
/// store under the tenant's id, within the tenant's own queue bounds, and what settles gives its room under
/// the group's byte bound back.
///
/// The tenant's bounds are kept here rather than in the shared store, because one store serves every
/// tenant and each tenant has bounds of its own (``SegmentPipeline/QueueLimits``). They count as the
/// in-memory store counts: messages waiting to be claimed, not the ones being sent. The group's byte bound
/// is given back as messages are settled delivered or failed, or handed back, with exactly the bytes of
/// those messages: the store is the one place that knows which messages of a claim settled.
///
/// A lock around plain counters (no `await` inside), so a pipeline calling from its actor never waits on
/// another tenant.
final class TenantStore: SegmentMessageStore {
    private struct State {
        /// Messages and bytes waiting to be claimed (appended or released, not claimed).
        var queued = (messages: 0, bytes: 0)
        /// Which messages of each claim in flight are settled (delivered or failed). Appends under way count
        /// in ``queued`` before the shared store answers, so two calls at once cannot both take the last room.
        var claims: [UInt64: [Bool]] = [:]
    }

    let tenant: String
    private let base: any SegmentMessageStore
    private let limits: SegmentPipeline.QueueLimits
    private let bytes: ByteGate
    private let state = Locked(State())

    init(tenant: String, base: any SegmentMessageStore, limits: SegmentPipeline.QueueLimits, bytes: ByteGate) {
        self.tenant = tenant
        self.base = base
        self.limits = limits
        self.bytes = bytes
    }

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        // Reserve the room first, then ask the shared store; give back what it did not take.
        let (taken, takenMessages, takenBytes) = state.withLock { state -> (Int, Int, Int) in
            var taken = 0
            var messages = state.queued.messages
            var bytes = state.queued.bytes
            for unit in units {
                let unitBytes = MessageQueue.bytes(of: unit)
                // An empty queue takes any unit, as the in-memory store does, so the largest unit gets in.
                let fits =
                    messages == 0
                    || (messages + unit.count <= limits.maximumMessages && bytes + unitBytes <= limits.maximumBytes)
                guard fits else { break }
                messages += unit.count
                bytes += unitBytes
                taken += 1
            }
            let added = (messages - state.queued.messages, bytes - state.queued.bytes)
            state.queued = (messages, bytes)
            return (taken, added.0, added.1)
        }
        guard taken > 0 else { return 0 }
        let accepted: Int
        do {
            accepted = try await base.append(Array(units.prefix(taken)), tenant: self.tenant)
        } catch {
            state.withLock { $0.queued = ($0.queued.messages - takenMessages, $0.queued.bytes - takenBytes) }
            throw error
        }
        if accepted < taken {
            var messages = 0
            var bytes = 0
            for unit in units[accepted..<taken] {
                messages += unit.count
                bytes += MessageQueue.bytes(of: unit)
            }
            state.withLock { $0.queued = ($0.queued.messages - messages, $0.queued.bytes - bytes) }
        }
        return accepted
    }

    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        guard
            let claim = try await base.claim(
                tenant: self.tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
        else { return nil }
        let claimBytes = MessageQueue.bytes(of: claim.messages)
        state.withLock { state in
            state.queued = (
                max(0, state.queued.messages - claim.messages.count), max(0, state.queued.bytes - claimBytes)
            )
            state.claims[claim.id] = Array(repeating: false, count: claim.messages.count)
        }
        return claim
    }

    func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws {
        try await base.settle(claim, messages: range, as: settlement)
        if case .retry = settlement { return }
        // Only messages settled for the first time give their room back.
        let newlySettled = state.withLock { state -> [Int] in
            guard var settled = state.claims[claim.id] else { return [] }
            let indices = range.filter { settled.indices.contains($0) && !settled[$0] }
            for index in indices { settled[index] = true }
            state.claims[claim.id] = settled.allSatisfy { $0 } ? nil : settled
            return indices
        }
        var freed = 0
        for index in newlySettled { freed += claim.messages[index].byteCount }
        bytes.release(freed, tenant: tenant)
    }

    func release(_ claim: SegmentClaim) async throws {
        try await base.release(claim)
        state.withLock { state in
            guard let settled = state.claims.removeValue(forKey: claim.id) else { return }
            var messages = 0
            var bytes = 0
            var unitStart = 0
            for end in claim.unitEnds {
                // As the in-memory store: a unit goes back whole when its first message is open.
                if unitStart < end, !settled[unitStart] {
                    messages += end - unitStart
                    bytes += MessageQueue.bytes(of: Array(claim.messages[unitStart..<end]))
                }
                unitStart = end
            }
            state.queued = (state.queued.messages + messages, state.queued.bytes + bytes)
        }
    }

    func recover(tenant: String) async throws -> SegmentStoreRecovery {
        let recovery = try await base.recover(tenant: self.tenant)
        // An earlier run's leftovers (a durable store) count against the tenant's bounds from now on.
        let usage = try await base.usage(tenant: self.tenant)
        state.withLock { $0.queued = (usage.claimableMessages, usage.claimableBytes) }
        return recovery
    }

    func usage(tenant: String) async throws -> SegmentStoreUsage {
        try await base.usage(tenant: self.tenant)
    }

    func setPause(until end: Date?, tenant: String) async throws {
        try await base.setPause(until: end, tenant: self.tenant)
    }

    func handBack(tenant: String) async throws -> [SegmentMessage] {
        let messages = try await base.handBack(tenant: self.tenant)
        guard !messages.isEmpty else { return messages }
        state.withLock { $0.queued = (0, 0) }
        bytes.release(SegmentPipelineGroup.bytes(of: messages), tenant: self.tenant)
        return messages
    }
}
