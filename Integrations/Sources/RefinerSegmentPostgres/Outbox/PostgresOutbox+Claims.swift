import Foundation
import NIOCore
import PostgresNIO
import RefinerSegment

extension PostgresOutbox {
    /// Takes the sender lease of a tenant that has messages and may send now (no pause, no retry wait, no live
    /// sender elsewhere), the one served longest ago first; `nil` when there is none.
    ///
    /// `FOR NO KEY UPDATE SKIP LOCKED` on the tenants table: two instances asking at once take different tenants.
    /// The tenant's claim mark (`claimed_through`) starts again, so the new holder claims from the oldest message
    /// left; when the tenant is taken from a holder whose lease ran out (killed, stalled), what that holder had
    /// claimed and not settled spends an attempt, as a claim did when claims wrote the rows.
    /// Whether a tenant has messages is a `LATERAL ... ORDER BY sequence LIMIT 1` probe of its index, never a join
    /// the planner could turn into a scan of the whole outbox (it did, on young tables without statistics); the
    /// order makes it an index scan that stops at the first row, where a bitmap scan read every index entry of the
    /// tenant, the deleted rows' included (75 ms an acquisition with 200,000 rows in the outbox).
    /// - Parameter held: Tenants this instance already holds, left to it.
    public func acquireTenant(excluding held: [String] = [], lease: Duration? = nil) async throws -> TenantLease? {
        let lease = lease ?? configuration.lease
        do {
            let rows = try await client.query(
                """
                WITH candidate AS (
                    SELECT c.tenant, c.sender_owner, c.claimed_through FROM refiner_segment_tenants AS c
                    CROSS JOIN LATERAL (
                        SELECT 1 FROM refiner_segment_outbox AS o WHERE o.tenant = c.tenant ORDER BY o.sequence LIMIT 1
                    ) AS waiting
                    WHERE (c.sender_owner IS NULL OR c.sender_until <= now())
                      AND (c.paused_until IS NULL OR c.paused_until <= now())
                      AND (c.retry_at IS NULL OR c.retry_at <= now())
                      AND c.tenant <> ALL(\(held)::text[])
                    ORDER BY c.sender_until NULLS FIRST, c.tenant
                    LIMIT 1
                    FOR NO KEY UPDATE OF c SKIP LOCKED
                ), taken AS (
                    UPDATE refiner_segment_tenants AS t
                    SET sender_owner = \(configuration.owner),
                        sender_until = now() + \(lease.milliseconds) * interval '1 millisecond',
                        claimed_through = NULL
                    WHERE t.tenant = (SELECT tenant FROM candidate)
                    RETURNING t.tenant, t.sender_until
                ), abandoned AS (
                    UPDATE refiner_segment_outbox AS o SET attempts = o.attempts + 1
                    WHERE o.tenant = (SELECT tenant FROM taken)
                      AND o.sequence <= (SELECT claimed_through FROM candidate WHERE sender_owner IS NOT NULL)
                )
                SELECT tenant, sender_until FROM taken
                """,
                logger: logger
            )
            for try await (tenant, until) in rows.decode((String, Date).self) {
                return TenantLease(tenant: tenant, until: until)
            }
            return nil
        } catch {
            throw PostgresStoreError.wrapping(error, "acquiring a tenant")
        }
    }

    /// Claims the tenant's oldest messages not claimed yet, whole units, up to the limits, and renews the tenant's
    /// sender lease; `nil` when this instance no longer holds the tenant, the tenant waits for a retry
    /// (`retry_at`, on every instance: its later messages wait behind the batch that failed), or nothing is ready.
    ///
    /// One statement, which writes the tenant row only: the sender lease is the lease of the batch. The claim
    /// locks the tenant row (claims of one tenant run one after the other), reads the rows after the holder's
    /// mark (`claimed_through`) by sequence, cuts them to the longest run of whole units within the limits (the
    /// first unit always goes, so an odd head never blocks the tenant), and moves the mark to the batch's last
    /// sequence. The message rows stay as they were enqueued until they are deleted: a claim costs no row
    /// version, no index entry, no dead tuple. A holder killed with a batch in flight leaves the mark behind; the
    /// next holder takes the tenant once the sender lease runs out, starts from the oldest row left (exactly the
    /// unsettled ones) and counts the lost claim as an attempt (``acquireTenant(excluding:lease:)``).
    ///
    /// Claims of this kind go one after the other: giving one back (``retryLater(_:after:)``,
    /// ``pause(_:for:)``) gives back every later claim of the holder too.
    /// - Parameters:
    ///   - maximumMessages: At most this many messages (Segment takes 2,500).
    ///   - maximumBytes: At most this many bytes of message JSON, a comma per message included: the batch limit
    ///     less the envelope (``SegmentBatch/envelopeBytes(writeKey:)``).
    public func claimBatch(
        of tenant: String,
        maximumMessages: Int = SegmentBatch.maximumMessages,
        maximumBytes: Int = SegmentBatch.maximumBytes - 200,
        lease: Duration? = nil
    ) async throws -> OutboxBatch? {
        do {
            return try await claim(
                of: tenant, settling: [], maximumMessages: maximumMessages, maximumBytes: maximumBytes,
                lease: lease ?? configuration.lease)
        } catch {
            throw PostgresStoreError.wrapping(error, "claiming a batch of tenant \(tenant)")
        }
    }

    /// Deletes delivered messages of a held tenant and claims its next batch, in one statement: one round trip
    /// and one commit per batch where ``settleDelivered(_:)`` then ``claimBatch(of:maximumMessages:maximumBytes:lease:)``
    /// take two of each. What each does is unchanged: the delivered rows go whoever holds them now, the tenant's
    /// retry wait ends, and the claim is that of `claimBatch` (`nil` when this instance no longer holds the
    /// tenant or nothing is ready; the delivered rows are deleted all the same).
    ///
    /// - Parameter delivered: Messages of `tenant` that Segment accepted.
    public func settleDelivered(
        _ delivered: [OutboxMessage],
        claimingNextOf tenant: String,
        maximumMessages: Int = SegmentBatch.maximumMessages,
        maximumBytes: Int = SegmentBatch.maximumBytes - 200,
        lease: Duration? = nil
    ) async throws -> OutboxBatch? {
        guard delivered.allSatisfy({ $0.tenant == tenant }) else {
            throw PostgresStoreError(.invalidInput, "delivered messages of another tenant than \(tenant)")
        }
        do {
            return try await claim(
                of: tenant, settling: delivered.map(\.sequence), maximumMessages: maximumMessages,
                maximumBytes: maximumBytes, lease: lease ?? configuration.lease)
        } catch {
            throw PostgresStoreError.wrapping(
                error, "deleting \(delivered.count) delivered messages of \(tenant) and claiming the next batch")
        }
    }

    /// The claim statement, deleting the `settling` rows first (delivered) when there are any.
    ///
    /// The tenant row is locked first (`holder`) and updated once at the end (a statement may not update a row
    /// twice): the renewal of the sender lease, the new mark, and the end of the retry wait when delivered rows
    /// were deleted. The scan sees the statement's snapshot, where the rows being deleted are still there: they
    /// are left out by their sequences (compared only below the last of them: those above the mark are not).
    /// Rows under a live row lease (a claim of the store protocol's,
    /// ``claimLeasingRows(of:maximumMessages:maximumBytes:lease:)``) are left out too.
    ///
    /// Every step is linear in the rows it reads whatever plan the statistics of a young table lead to: the
    /// delete joins the sequences as an `unnest` (index probes, never a filter of every row of the tenant against
    /// the whole array), and the cut between units is computed with window functions over the read rows (a join
    /// of the rows with their units became a nested loop over two CTEs: 1.3 million comparisons a batch).
    private func claim(
        of tenant: String, settling: [Int64], maximumMessages: Int, maximumBytes: Int, lease: Duration
    ) async throws -> OutboxBatch? {
        let owner = configuration.owner
        let rows = try await client.query(
            """
            WITH deleted AS (
                DELETE FROM refiner_segment_outbox AS o USING unnest(\(settling)::int8[]) AS s(sequence)
                WHERE o.tenant = \(tenant) AND o.sequence = s.sequence
                RETURNING 1
            ), holder AS (
                SELECT coalesce(claimed_through, -1) AS mark,
                    retry_at IS NULL OR retry_at <= now() OR EXISTS (SELECT 1 FROM deleted) AS ready
                FROM refiner_segment_tenants
                WHERE tenant = \(tenant) AND sender_owner = \(owner)
                FOR NO KEY UPDATE
            ), locked AS (
                SELECT o.sequence, o.unit, o.unit_size, octet_length(o.payload) + 1 AS bytes, o.message_id,
                    o.response_id, o.kind, o.payload, o.attempts, o.first_failure_at, o.failures, o.retry_count
                FROM refiner_segment_outbox AS o
                WHERE o.tenant = \(tenant)
                  AND o.sequence > (SELECT mark FROM holder WHERE ready)
                  AND (o.lease_owner IS NULL OR o.lease_until <= now())
                  AND (o.sequence > \(settling.max() ?? -1) OR o.sequence <> ALL(\(settling)::int8[]))
                ORDER BY o.sequence
                LIMIT \(maximumMessages)
            ), \(unescaped: Self.unitsWithin(maximumBytes: maximumBytes)), picked AS (
                SELECT * FROM units WHERE \(unescaped: Self.wholeUnitsWithinTheLimits)
            ), renewed AS (
                UPDATE refiner_segment_tenants
                SET sender_until = now() + \(lease.milliseconds) * interval '1 millisecond',
                    retry_at = CASE WHEN EXISTS (SELECT 1 FROM deleted) THEN NULL ELSE retry_at END,
                    claimed_through = coalesce((SELECT max(sequence) FROM picked), claimed_through)
                WHERE tenant = \(tenant) AND sender_owner = \(owner)
                RETURNING sender_until
            )
            SELECT p.sequence, p.unit, p.message_id, p.response_id, p.kind, p.payload, p.attempts + 1,
                p.first_failure_at, r.sender_until, now(), p.failures, p.retry_count
            FROM picked AS p CROSS JOIN renewed AS r
            ORDER BY p.sequence
            """,
            logger: logger
        )
        return try await batch(of: tenant, from: rows)
    }

    /// The two CTEs both claims cut their batch with, over a CTE `locked` of the tenant's candidate rows
    /// (`sequence`, `unit`, `unit_size`, `bytes`, in sequence order): `measured` (each row with its unit's first
    /// sequence and how many of its rows were read) and `units` (with the running bytes up to its unit), with the
    /// limit in them. `maximumBytes` is an integer written as its digits, never text from outside.
    static func unitsWithin(maximumBytes: Int) -> String {
        """
        measured AS (
            SELECT l.*, min(l.sequence) OVER unit AS first, count(*) OVER unit AS present
            FROM locked AS l WINDOW unit AS (PARTITION BY l.unit)
        ), units AS (
            SELECT m.*, sum(m.bytes) OVER (ORDER BY m.first) AS running,
                \(maximumBytes)::int8 AS maximum_bytes
            FROM measured AS m
        )
        """
    }

    /// The rows of `units` (``unitsWithin(maximumBytes:)``) a claim takes: the longest run of whole units from the
    /// first, within the bytes; the first unit always, so an odd head never blocks the tenant.
    static let wholeUnitsWithinTheLimits = """
        first = (SELECT min(first) FROM units)
           OR first < coalesce(
               (SELECT min(first) FROM units WHERE present < unit_size OR running > maximum_bytes),
               9223372036854775807)
        """

    /// Claims like ``claimBatch(of:maximumMessages:maximumBytes:lease:)``, but leases the rows themselves
    /// (`lease_owner`, `lease_until`, one more attempt): the claims of the store protocol, which may hold several
    /// batches of a tenant at once and give back any one of them, at the front of the tenant. The holder must
    /// hold the tenant's sender lease (``acquire(tenant:lease:)``).
    ///
    /// Rows are locked with `FOR UPDATE SKIP LOCKED` and updated through an array of their sequences (an index
    /// scan on the primary key whatever the planner's statistics say about a young table). Rows of an expired
    /// lease (a killed instance's) are claimed again, first.
    func claimLeasingRows(of tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration)
        async throws -> OutboxBatch?
    {
        let owner = configuration.owner
        do {
            let rows = try await client.query(
                """
                WITH renewed AS (
                    UPDATE refiner_segment_tenants
                    SET sender_until = now() + \(lease.milliseconds) * interval '1 millisecond'
                    WHERE tenant = \(tenant) AND sender_owner = \(owner)
                    RETURNING sender_until, retry_at IS NULL OR retry_at <= now() AS ready
                ), locked AS (
                    SELECT o.sequence, o.unit, o.unit_size, octet_length(o.payload) + 1 AS bytes
                    FROM refiner_segment_outbox AS o
                    WHERE o.tenant = \(tenant)
                      AND (o.lease_owner IS NULL OR o.lease_until <= now())
                      AND EXISTS (SELECT 1 FROM renewed WHERE ready)
                    ORDER BY o.sequence
                    LIMIT \(maximumMessages)
                    FOR UPDATE SKIP LOCKED
                ), \(unescaped: Self.unitsWithin(maximumBytes: maximumBytes)), picked AS (
                    SELECT array_agg(sequence) AS sequences FROM units WHERE \(unescaped: Self.wholeUnitsWithinTheLimits)
                )
                UPDATE refiner_segment_outbox AS o
                SET lease_owner = \(owner), lease_until = (SELECT sender_until FROM renewed),
                    attempts = o.attempts + 1
                WHERE o.tenant = \(tenant) AND o.sequence = ANY((SELECT sequences FROM picked)::int8[])
                RETURNING o.sequence, o.unit, o.message_id, o.response_id, o.kind, o.payload, o.attempts,
                    o.first_failure_at, o.lease_until, now(), o.failures, o.retry_count
                """,
                logger: logger
            )
            return try await batch(of: tenant, from: rows)
        } catch {
            throw PostgresStoreError.wrapping(error, "claiming a batch of tenant \(tenant)")
        }
    }

    /// The batch of a claim's rows: sequence, unit, message id, response id, kind, payload, attempts (this claim
    /// included), first failure, lease end, the server's time, failures, retry count; `nil` when there are none.
    private func batch(of tenant: String, from rows: PostgresRowSequence) async throws -> OutboxBatch? {
        var messages: [OutboxMessage] = []
        var leaseUntil: Date?
        var claimedAt: Date?
        for try await row in rows.decode(
            (Int64, Int64, String, String?, String, ByteBuffer, Int32, Date?, Date, Date, Int32, Int32).self
        ) {
            let (sequence, unit, messageID, responseID, kind, payload, attempts, firstFailure, until, now) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9)
            messages.append(
                OutboxMessage(
                    tenant: tenant,
                    sequence: sequence,
                    unit: unit,
                    message: SegmentMessage(
                        kind: SegmentMessage.Kind(rawValue: kind),
                        messageID: messageID,
                        responseID: responseID,
                        json: Array(buffer: payload)
                    ),
                    attempts: Int(attempts),
                    firstFailureAt: firstFailure,
                    failures: Int(row.10),
                    retryCount: Int(row.11)
                )
            )
            leaseUntil = until
            claimedAt = now
        }
        guard let leaseUntil, let claimedAt else { return nil }
        messages.sort { $0.sequence < $1.sequence }
        return OutboxBatch(
            tenant: tenant,
            messages: messages,
            owner: configuration.owner,
            claimedAt: claimedAt,
            leaseUntil: leaseUntil
        )
    }

    /// Takes (or renews) this instance's sender lease on one tenant; `false` when another instance holds it, the
    /// tenant is paused, or it waits for a retry. Taken from another holder, the tenant's claim mark starts again.
    public func acquire(tenant: String, lease: Duration? = nil) async throws -> Bool {
        let lease = lease ?? configuration.lease
        do {
            let rows = try await client.query(
                """
                INSERT INTO refiner_segment_tenants AS t (tenant, sender_owner, sender_until)
                VALUES (\(tenant), \(configuration.owner), now() + \(lease.milliseconds) * interval '1 millisecond')
                ON CONFLICT (tenant) DO UPDATE
                SET sender_owner = EXCLUDED.sender_owner, sender_until = EXCLUDED.sender_until,
                    claimed_through = CASE WHEN t.sender_owner = EXCLUDED.sender_owner THEN t.claimed_through END
                WHERE (t.sender_owner IS NULL OR t.sender_until <= now() OR t.sender_owner = EXCLUDED.sender_owner)
                  AND (t.paused_until IS NULL OR t.paused_until <= now())
                  AND (t.retry_at IS NULL OR t.retry_at <= now())
                RETURNING 1
                """,
                logger: logger
            )
            for try await _ in rows { return true }
            return false
        } catch {
            throw PostgresStoreError.wrapping(error, "acquiring tenant \(tenant)")
        }
    }

    /// Extends the lease of a batch and of its tenant's sender lease; `false` when this instance lost them (the
    /// lease ran out and another instance claimed the tenant, or the batch is no longer claimed).
    ///
    /// A batch of ``claimBatch(of:maximumMessages:maximumBytes:lease:)`` is held through the tenant row alone (its
    /// last sequence at or below the holder's mark); one of the store protocol's also has its rows' lease extended.
    public func renew(_ batch: OutboxBatch) async throws -> Bool {
        do {
            let rows = try await client.query(
                """
                WITH renewed AS (
                    UPDATE refiner_segment_tenants
                    SET sender_until = now() + \(configuration.lease.milliseconds) * interval '1 millisecond'
                    WHERE tenant = \(batch.tenant) AND sender_owner = \(batch.owner)
                    RETURNING sender_until, claimed_through
                ), rows AS (
                    UPDATE refiner_segment_outbox SET lease_until = (SELECT sender_until FROM renewed)
                    WHERE tenant = \(batch.tenant) AND sequence = ANY(\(batch.sequences)::int8[])
                      AND lease_owner = \(batch.owner) AND EXISTS (SELECT 1 FROM renewed)
                    RETURNING 1
                )
                SELECT count(*) FROM renewed
                WHERE claimed_through >= \(batch.sequences.max() ?? 0) OR EXISTS (SELECT 1 FROM rows)
                """,
                logger: logger
            )
            for try await (count) in rows.decode(Int.self) { return count > 0 }
            return false
        } catch {
            throw PostgresStoreError.wrapping(error, "renewing a lease of tenant \(batch.tenant)")
        }
    }

    /// Gives up this instance's sender lease on a tenant, so any instance may take it; wakes the others when the
    /// tenant still has messages. What it claimed and did not settle goes back with the tenant, at its front.
    public func releaseTenant(_ tenant: String) async throws {
        try await releaseTenant(tenant, endingRetryWait: false)
    }

    /// Gives up the sender lease; with `endingRetryWait`, also ends the tenant's retry wait (the holder that set
    /// it with ``recordRetry(_:failures:retryCount:firstFailure:nextAttempt:)`` gave its claims back, and the
    /// retry state went back with the rows, for the next holder to follow).
    func releaseTenant(_ tenant: String, endingRetryWait: Bool) async throws {
        do {
            try await client.query(
                """
                WITH released AS (
                    UPDATE refiner_segment_tenants
                    SET sender_owner = NULL, claimed_through = NULL,
                        retry_at = CASE WHEN \(endingRetryWait) THEN NULL ELSE retry_at END
                    WHERE tenant = \(tenant) AND sender_owner = \(configuration.owner)
                    RETURNING tenant
                )
                SELECT pg_notify(\(configuration.channel), tenant) FROM released
                WHERE EXISTS (SELECT 1 FROM refiner_segment_outbox WHERE tenant = \(tenant))
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "releasing tenant \(tenant)")
        }
    }
}
