import Foundation
import PostgresNIO
import RefinerSegment

/// The outbox as the core pipeline's store: a `SegmentPipeline` per tenant on any instance, all on one database.
///
/// A claim first takes (or renews) the tenant's sender lease for this instance, so one instance at a time sends a
/// tenant's messages, in order; once every claim this instance holds of the tenant is settled or released, the
/// tenant is handed back for any instance to take. The `lease` a pipeline passes is the lease of both (the core
/// pipeline asks for 300 s: a killed instance's claims wait that long before another instance sends them). A
/// retry keeps the claim and stretches its lease past the next attempt. A `Retry-After` pause set by one
/// instance's pipeline (``setPause(until:tenant:)``) stops every instance's claims of that tenant until it ends.
///
/// ``usage(tenant:)`` counts as claimable only what this instance may claim now: nothing while another instance
/// holds the tenant or a pause is in force, so a pipeline waits instead of asking again and again.
extension PostgresOutbox: SegmentMessageStore {
    /// Enqueues the units in one statement; all are accepted (the outbox is bounded by the database's disk).
    ///
    /// - Throws: ``PostgresStoreError``; nothing is stored then.
    public func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        try await enqueue(units, tenant: tenant)
        return units.count
    }

    /// Takes the tenant's sender lease unless another instance holds it or a pause is in force, then claims its
    /// oldest whole units within the bounds (rows of an expired lease first: a killed instance's); `nil` when
    /// there is nothing this instance may claim now. The rows themselves are leased (`lease_owner`,
    /// `lease_until`): a pipeline may hold several claims of a tenant and give back any one of them.
    public func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        guard maximumMessages > 0, try await acquire(tenant: tenant, lease: lease) else { return nil }
        guard
            let batch = try await claimLeasingRows(
                of: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
        else {
            if !claims.holds(tenant: tenant) { try await releaseTenant(tenant) }
            return nil
        }
        var unitEnds: [Int] = []
        for (index, message) in batch.messages.enumerated()
        where index + 1 == batch.messages.count || batch.messages[index + 1].unit != message.unit {
            unitEnds.append(index + 1)
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

    /// Deletes delivered messages, moves failed ones to the dead letters with the reason, or records the retry
    /// schedule on the rows (kept for whoever claims them next). A claim of another store, or one already
    /// settled or released, is ignored.
    public func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement)
        async throws
    {
        guard let batch = claims.batch(claim.id) else { return }
        let messages = Array(batch.messages[range.clamped(to: batch.messages.indices)])
        switch settlement {
        case .delivered:
            try await settleDelivered(messages)
        case .failed(let reason):
            try await deadLetter(messages, reason: reason)
        case .retry(let state):
            try await recordRetry(
                messages, failures: state.failures, retryCount: state.retryCount, firstFailure: state.firstFailure,
                nextAttempt: state.nextAttempt)
            return
        }
        if claims.settle(claim.id, range) { try await releaseTenant(batch.tenant) }
    }

    /// Gives the claim's unsettled messages back, at the front of the tenant, with their retry state; hands the
    /// tenant back once this instance holds no other claim of it.
    public func release(_ claim: SegmentClaim) async throws {
        guard let (batch, unsettled, tenantIdle) = claims.remove(claim.id) else { return }
        try await returnMessages(unsettled, of: batch)
        if tenantIdle { try await releaseTenant(batch.tenant, endingRetryWait: true) }
    }

    /// Frees at once what an earlier run under this instance's owner name still held (another owner's claims
    /// wait for their lease), and reports what this instance may claim now and the pause in force.
    public func recover(tenant: String) async throws -> SegmentStoreRecovery {
        try await freeLeases(ownedBy: configuration.owner, tenant: tenant)
        let usage = try await usage(tenant: tenant)
        return SegmentStoreRecovery(messages: usage.claimableMessages, pausedUntil: usage.pausedUntil)
    }

    /// What the outbox holds for the tenant, in one statement: every row not settled (leased or not), and what
    /// this instance may claim now (none while another instance holds the tenant or a pause is in force).
    ///
    /// Counts scan the tenant's rows: cheap for a backlog of thousands, linear in it.
    public func usage(tenant: String) async throws -> SegmentStoreUsage {
        do {
            let rows = try await client.query(
                """
                WITH state AS (
                    SELECT
                        coalesce(bool_and(
                            (t.sender_owner IS NULL OR t.sender_until <= now() OR t.sender_owner = \(configuration.owner))
                            AND (t.paused_until IS NULL OR t.paused_until <= now())
                            AND (t.retry_at IS NULL OR t.retry_at <= now())), true) AS open,
                        max(CASE WHEN t.paused_until > now() THEN t.paused_until END) AS paused
                    FROM refiner_segment_tenants AS t WHERE t.tenant = \(tenant)
                ), free AS (
                    SELECT o.payload, o.enqueued_at,
                        (o.lease_owner IS NULL OR o.lease_until <= now()) AND (SELECT open FROM state) AS claimable
                    FROM refiner_segment_outbox AS o WHERE o.tenant = \(tenant)
                )
                SELECT count(*), count(*) FILTER (WHERE claimable),
                    coalesce(sum(octet_length(payload) + 1) FILTER (WHERE claimable), 0),
                    coalesce(sum(octet_length(payload)), 0), min(enqueued_at), (SELECT paused FROM state)
                FROM free
                """,
                logger: logger
            )
            for try await row in rows.decode((Int, Int, Int, Int, Date?, Date?).self) {
                return SegmentStoreUsage(
                    messages: row.0, claimableMessages: row.1, claimableBytes: row.2, storedBytes: row.3,
                    oldestAppended: row.4, pausedUntil: row.5)
            }
            return SegmentStoreUsage()
        } catch {
            throw PostgresStoreError.wrapping(error, "reading the usage of tenant \(tenant)")
        }
    }

    /// Stores the pause on the tenant's row, where every instance reads it, keeping a longer one already there
    /// (another instance's); `nil` ends it only if it is no longer than the last pause this instance set (or is
    /// over), so one instance's clear never shortens a later, longer pause of another.
    public func setPause(until end: Date?, tenant: String) async throws {
        do {
            if let end {
                claims.notePause(end, tenant: tenant)
                try await client.query(
                    """
                    INSERT INTO refiner_segment_tenants AS t (tenant, paused_until) VALUES (\(tenant), \(end))
                    ON CONFLICT (tenant) DO UPDATE
                    SET paused_until = greatest(t.paused_until, EXCLUDED.paused_until)
                    """,
                    logger: logger
                )
            } else {
                let mine = claims.takePause(tenant: tenant)
                try await client.query(
                    """
                    UPDATE refiner_segment_tenants SET paused_until = NULL
                    WHERE tenant = \(tenant) AND (paused_until <= now() OR paused_until <= \(mine))
                    """,
                    logger: logger
                )
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "setting the pause of tenant \(tenant)")
        }
    }

    /// Nothing: the outbox keeps what is left for the next run, or another instance.
    public func handBack(tenant: String) async throws -> [SegmentMessage] { [] }
}
