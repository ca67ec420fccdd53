#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A ``SegmentMessageStore`` in memory: bounded by messages and bytes, gone with the process.
///
/// The pipeline's default store. Messages being sent no longer count against the bounds, so memory holds
/// at most the bounds plus the batches in flight. Nothing survives the process: when the pipeline stops,
/// what is left is handed back (``SegmentOutcome/handedBack(_:)`` and
/// ``SegmentPipeline/handedBackMessages``) for the host to keep. Claims have no lease: they are the
/// holder's until settled or released.
public final class InMemoryMessageStore: SegmentMessageStore {
    private struct Claimed {
        /// The ordinal of the claim's first message, to give released claims back in accepted order.
        var start: Int
        var messages: [SegmentMessage]
        var unitEnds: [Int]
        var settled: [Bool]
        var retryState: SegmentRetryState
    }

    private struct Released {
        var start: Int
        var messages: [SegmentMessage]
        var unitEnds: [Int]
        var retryState: SegmentRetryState
    }

    private struct Tenant {
        var queue = MessageQueue()
        /// Released claims waiting to be claimed again, before the queue, by accepted order.
        var released: [Released] = []
        var claims: [UInt64: Claimed] = [:]
        var pausedUntil: Date?
    }

    private struct State {
        var tenants: [String: Tenant] = [:]
        var nextClaim: UInt64 = 1
    }

    /// The bounds of each tenant's queue.
    public let limits: SegmentPipeline.QueueLimits
    private let state = Locked(State())

    /// Creates an empty store whose tenants each hold at most `limits` (10,000 messages, 16 MiB).
    public init(limits: SegmentPipeline.QueueLimits = .init()) {
        self.limits = limits
    }

    /// Appends the units that fit, in order.
    public func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        appendNow(units, tenant: tenant)
    }

    func appendNow(_ units: [[SegmentMessage]], tenant: String) -> Int {
        state.withLock { state in
            var accepted = 0
            update(&state, tenant) { tenant in
                for unit in units {
                    let bytes = MessageQueue.bytes(of: unit)
                    guard
                        tenant.queue.fits(
                            count: unit.count, bytes: bytes, maximumMessages: limits.maximumMessages,
                            maximumBytes: limits.maximumBytes)
                    else { break }
                    tenant.queue.append(unit, bytes: bytes)
                    accepted += 1
                }
            }
            return accepted
        }
    }

    /// Takes released claims first (as they were), then the front of the queue.
    public func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        state.withLock { state in
            let id = state.nextClaim
            var claim: SegmentClaim?
            update(&state, tenant) { tenantState in
                var taken: Released
                if !tenantState.released.isEmpty {
                    taken = tenantState.released.removeFirst()
                } else {
                    let start = tenantState.queue.removedCount
                    guard
                        let cut = tenantState.queue.cutBatchWithUnits(
                            maximumMessages: maximumMessages, maximumBodyBytes: maximumBytes)
                    else { return }
                    taken = Released(start: start, messages: cut.messages, unitEnds: cut.unitEnds, retryState: .init())
                }
                tenantState.claims[id] = Claimed(
                    start: taken.start, messages: taken.messages, unitEnds: taken.unitEnds,
                    settled: Array(repeating: false, count: taken.messages.count), retryState: taken.retryState)
                claim = SegmentClaim(
                    id: id, tenant: tenant, messages: taken.messages, unitEnds: taken.unitEnds,
                    retryState: taken.retryState)
            }
            if claim != nil { state.nextClaim += 1 }
            return claim
        }
    }

    /// Marks messages settled; a claim whose messages are all delivered or failed is forgotten.
    public func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement)
        async throws
    {
        state.withLock { state in
            update(&state, claim.tenant) { tenant in
                guard var claimed = tenant.claims[claim.id] else { return }
                if case .retry(let retryState) = settlement {
                    claimed.retryState = retryState
                    tenant.claims[claim.id] = claimed
                    return
                }
                for index in range where claimed.settled.indices.contains(index) { claimed.settled[index] = true }
                tenant.claims[claim.id] = claimed.settled.allSatisfy { $0 } ? nil : claimed
            }
        }
    }

    /// Puts the unsettled messages back before the queue, in accepted order.
    public func release(_ claim: SegmentClaim) async throws {
        state.withLock { state in
            update(&state, claim.tenant) { tenant in
                guard let claimed = tenant.claims.removeValue(forKey: claim.id) else { return }
                var rest: [SegmentMessage] = []
                var unitEnds: [Int] = []
                var unitStart = 0
                for end in claimed.unitEnds {
                    // Settlements come whole units at a time: a unit is kept when its first message is open.
                    if unitStart < end, !claimed.settled[unitStart] {
                        rest.append(contentsOf: claimed.messages[unitStart..<end])
                        unitEnds.append(rest.count)
                    }
                    unitStart = end
                }
                guard !rest.isEmpty else { return }
                tenant.released.append(
                    Released(start: claimed.start, messages: rest, unitEnds: unitEnds, retryState: claimed.retryState))
                tenant.released.sort { $0.start < $1.start }
            }
        }
    }

    /// Releases every claim: a store in memory has no earlier holder, so this only reports what it holds.
    public func recover(tenant: String) async throws -> SegmentStoreRecovery {
        let usage = usageNow(tenant: tenant)
        return SegmentStoreRecovery(messages: usage.claimableMessages, pausedUntil: usage.pausedUntil)
    }

    /// What the tenant's queue holds.
    public func usage(tenant: String) async throws -> SegmentStoreUsage {
        usageNow(tenant: tenant)
    }

    func usageNow(tenant: String) -> SegmentStoreUsage {
        state.withLock { state in
            guard let tenant = state.tenants[tenant] else { return SegmentStoreUsage() }
            let releasedMessages = tenant.released.reduce(0) { $0 + $1.messages.count }
            let releasedBytes = tenant.released.reduce(0) { $0 + MessageQueue.bytes(of: $1.messages) }
            let claimed = tenant.claims.values.reduce(0) { $0 + $1.settled.count { !$0 } }
            let claimable = tenant.queue.messageCount + releasedMessages
            return SegmentStoreUsage(
                messages: claimable + claimed, claimableMessages: claimable,
                claimableBytes: tenant.queue.byteCount + releasedBytes,
                storedBytes: tenant.queue.byteCount + releasedBytes, pausedUntil: tenant.pausedUntil)
        }
    }

    /// Keeps the pause for ``usage(tenant:)``.
    public func setPause(until end: Date?, tenant: String) async throws {
        state.withLock { state in update(&state, tenant) { $0.pausedUntil = end } }
    }

    /// Removes and returns every message not claimed, in accepted order.
    public func handBack(tenant: String) async throws -> [SegmentMessage] {
        state.withLock { state in
            var messages: [SegmentMessage] = []
            update(&state, tenant) { tenant in
                messages = tenant.released.flatMap(\.messages) + tenant.queue.removeAll()
                tenant.released = []
            }
            return messages
        }
    }

    private func update(_ state: inout State, _ name: String, _ body: (inout Tenant) -> Void) {
        body(&state.tenants[name, default: Tenant()])
    }
}
