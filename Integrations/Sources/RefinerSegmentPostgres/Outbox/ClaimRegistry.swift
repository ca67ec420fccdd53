import Foundation
import NIOConcurrencyHelpers

/// The batches an instance holds for the core pipeline, by claim id: what lets a settlement by index range find
/// the rows, and tells when the instance holds nothing more of a tenant (so its sender lease can go). Bounded by
/// the claims in flight; an entry goes when every message is settled or the claim released. It also keeps the end
/// of the last `Retry-After` pause this instance's pipeline set per tenant, so that its clear never ends a longer
/// pause another instance set since.
final class ClaimRegistry: Sendable {
    private struct Entry {
        var batch: OutboxBatch
        var settled: Set<Int> = []
    }
    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 1
        var pauses: [String: Date] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// Keeps a batch and returns its claim id.
    func register(_ batch: OutboxBatch) -> UInt64 {
        state.withLockedValue { state in
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = Entry(batch: batch)
            return id
        }
    }

    /// The batch of a claim still held.
    func batch(_ id: UInt64) -> OutboxBatch? { state.withLockedValue { $0.entries[id]?.batch } }

    /// Whether a claim of the tenant is still held.
    func holds(tenant: String) -> Bool {
        state.withLockedValue { state in state.entries.values.contains { $0.batch.tenant == tenant } }
    }

    /// Marks messages settled; forgets the claim once all are. Returns `true` when the claim was forgotten and no
    /// other claim of its tenant is held.
    @discardableResult
    func settle(_ id: UInt64, _ range: Range<Int>) -> Bool {
        state.withLockedValue { state in
            guard var entry = state.entries[id] else { return false }
            entry.settled.formUnion(range.clamped(to: entry.batch.messages.indices))
            guard entry.settled.count >= entry.batch.messages.count else {
                state.entries[id] = entry
                return false
            }
            state.entries[id] = nil
            return !state.entries.values.contains { $0.batch.tenant == entry.batch.tenant }
        }
    }

    /// Forgets a claim and returns its batch, the messages not yet settled, and whether no other claim of its
    /// tenant is held.
    func remove(_ id: UInt64) -> (batch: OutboxBatch, unsettled: [OutboxMessage], tenantIdle: Bool)? {
        state.withLockedValue { state in
            guard let entry = state.entries.removeValue(forKey: id) else { return nil }
            let unsettled = entry.batch.messages.indices.filter { !entry.settled.contains($0) }
                .map { entry.batch.messages[$0] }
            let idle = !state.entries.values.contains { $0.batch.tenant == entry.batch.tenant }
            return (entry.batch, unsettled, idle)
        }
    }

    /// Remembers the end of a pause this instance set for a tenant.
    func notePause(_ end: Date, tenant: String) {
        state.withLockedValue { $0.pauses[tenant] = end }
    }

    /// Forgets and returns the end of the pause this instance last set for a tenant.
    func takePause(tenant: String) -> Date? {
        state.withLockedValue { $0.pauses.removeValue(forKey: tenant) }
    }
}
