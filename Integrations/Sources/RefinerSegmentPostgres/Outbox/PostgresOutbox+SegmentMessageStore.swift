// Compiled once the core has `SegmentMessageStore` (the delivery branch, not yet on main when this was written):
// delete this `#if` and its `#endif` then. Checked against that branch's protocol text, not compiled here.
#if REFINER_SEGMENT_MESSAGE_STORE
import Foundation
import PostgresNIO
import RefinerSegment

/// The outbox as the core pipeline's store: a `SegmentPipeline` (or a pipeline group) on every instance, all on
/// one database.
///
/// A claim first takes the tenant's sender lease for this instance (one active sender per tenant across the
/// cluster) and keeps it while the pipeline keeps claiming; a claim that finds nothing, and ``release(_:)``, hand
/// the tenant back. The pipeline's `lease` is the lease of both. A `Retry-After` pause set by one instance's
/// pipeline (``setPause(until:tenant:)``) stops every instance's claims for that tenant until it ends.
extension PostgresOutbox: SegmentMessageStore {
    /// Enqueues the units in one statement; all are accepted (the outbox is bounded by the database's disk).
    public func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        try await enqueue(units, tenant: tenant)
        return units.count
    }

    /// Takes the tenant's sender lease if no other instance holds it and no pause is in force, then claims
    /// its oldest whole units within the bounds.
    public func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        guard try await acquire(tenant: tenant, lease: lease) else { return nil }
        guard
            let batch = try await claimBatch(
                of: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
        else {
            try await releaseTenant(tenant)
            return nil
        }
        var unitEnds: [Int] = []
        for (index, message) in batch.messages.enumerated() {
            let next = index + 1 < batch.messages.count ? batch.messages[index + 1].unit : nil
            if next != message.unit { unitEnds.append(index + 1) }
        }
        let id = claims.register(batch)
        return SegmentClaim(
            id: id,
            tenant: tenant,
            messages: batch.segmentMessages,
            unitEnds: unitEnds,
            retryState: SegmentRetryState(
                failures: batch.messages.map(\.failures).max() ?? 0,
                retryCount: batch.messages.map(\.retryCount).max() ?? 0,
                firstFailure: batch.messages.compactMap(\.firstFailureAt).min()
            )
        )
    }

    /// Deletes delivered messages, moves failed ones to the dead letters, or records the retry schedule.
    public func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement)
        async throws
    {
        guard let batch = claims.batch(claim.id) else { return }
        let messages = Array(batch.messages[range.clamped(to: batch.messages.indices)])
        switch settlement {
        case .delivered:
            try await settleDelivered(messages)
            claims.settle(claim.id, range)
        case .failed(let reason):
            try await deadLetter(messages, reason: reason)
            claims.settle(claim.id, range)
        case .retry(let state):
            try await recordRetry(
                messages, failures: state.failures, retryCount: state.retryCount, firstFailure: state.firstFailure,
                nextAttempt: state.nextAttempt)
        }
    }

    /// Gives the claim's unsettled messages back and hands the tenant back.
    public func release(_ claim: SegmentClaim) async throws {
        guard let (batch, unsettled) = claims.remove(claim.id) else { return }
        try await returnMessages(unsettled, of: batch)
        try await releaseTenant(batch.tenant)
    }

    /// Frees what an earlier run under this instance's owner name still held, and reports the tenant's backlog.
    public func recover(tenant: String) async throws -> SegmentStoreRecovery {
        try await freeLeases(ownedBy: configuration.owner, tenant: tenant)
        let usage = try await usage(tenant: tenant)
        return SegmentStoreRecovery(messages: usage.messages, pausedUntil: usage.pausedUntil)
    }

    /// What the outbox holds for the tenant.
    public func usage(tenant: String) async throws -> SegmentStoreUsage {
        guard let usage = try await usage().first(where: { $0.tenant == tenant }) else { return SegmentStoreUsage() }
        return SegmentStoreUsage(
            messages: usage.messages,
            claimableMessages: usage.messages,
            claimableBytes: usage.bytes + usage.messages,
            storedBytes: usage.bytes,
            oldestAppended: usage.oldestEnqueuedAt,
            pausedUntil: usage.pausedUntil
        )
    }

    /// Stores the pause on the tenant's row, where every instance reads it.
    public func setPause(until end: Date?, tenant: String) async throws {
        try await setPausedUntil(end, tenant: tenant)
    }

    /// Nothing: the outbox keeps what is left for the next run, or another instance.
    public func handBack(tenant: String) async throws -> [SegmentMessage] { [] }
}
#endif
