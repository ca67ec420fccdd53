import NIOConcurrencyHelpers

/// The batches an instance holds for the core pipeline, by claim id: what lets a settlement by index range find
/// the rows. Bounded by the claims in flight; an entry goes when every message is settled or the claim released.
final class ClaimRegistry: Sendable {
    private struct Entry {
        var batch: OutboxBatch
        var settled: Set<Int> = []
    }
    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 1
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

    /// Marks messages settled; forgets the claim once all are.
    func settle(_ id: UInt64, _ range: Range<Int>) {
        state.withLockedValue { state in
            guard var entry = state.entries[id] else { return }
            entry.settled.formUnion(range)
            state.entries[id] = entry.settled.count >= entry.batch.messages.count ? nil : entry
        }
    }

    /// Forgets a claim and returns its batch and the messages not yet settled.
    func remove(_ id: UInt64) -> (OutboxBatch, [OutboxMessage])? {
        state.withLockedValue { state in
            guard let entry = state.entries.removeValue(forKey: id) else { return nil }
            let unsettled = entry.batch.messages.indices.filter { !entry.settled.contains($0) }
                .map { entry.batch.messages[$0] }
            return (entry.batch, unsettled)
        }
    }
}
