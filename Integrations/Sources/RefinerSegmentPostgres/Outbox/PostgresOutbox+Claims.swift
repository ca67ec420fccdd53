import Foundation
import NIOCore
import PostgresNIO
import RefinerSegment

extension PostgresOutbox {
    /// Takes the sender lease of a tenant that has messages and may send now (no pause, no retry wait, no live
    /// sender elsewhere), the one served longest ago first; `nil` when there is none.
    ///
    /// `FOR NO KEY UPDATE SKIP LOCKED` on the tenants table: two instances asking at once take different tenants.
    /// Whether a tenant has messages is a `LATERAL ... LIMIT 1` probe of its index, never a join the planner
    /// could turn into a scan of the whole outbox (it did, on young tables without statistics).
    /// - Parameter held: Tenants this instance already holds, left to it.
    public func acquireTenant(excluding held: [String] = [], lease: Duration? = nil) async throws -> TenantLease? {
        let lease = lease ?? configuration.lease
        do {
            let rows = try await client.query(
                """
                UPDATE refiner_segment_tenants AS t
                SET sender_owner = \(configuration.owner),
                    sender_until = now() + \(lease.milliseconds) * interval '1 millisecond'
                WHERE t.tenant = (
                    SELECT c.tenant FROM refiner_segment_tenants AS c
                    CROSS JOIN LATERAL (
                        SELECT 1 FROM refiner_segment_outbox AS o WHERE o.tenant = c.tenant LIMIT 1
                    ) AS waiting
                    WHERE (c.sender_owner IS NULL OR c.sender_until <= now())
                      AND (c.paused_until IS NULL OR c.paused_until <= now())
                      AND (c.retry_at IS NULL OR c.retry_at <= now())
                      AND c.tenant <> ALL(\(held)::text[])
                    ORDER BY c.sender_until NULLS FIRST, c.tenant
                    LIMIT 1
                    FOR NO KEY UPDATE OF c SKIP LOCKED
                )
                RETURNING t.tenant, t.sender_until
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

    /// Claims the tenant's oldest messages, whole units, up to the limits, and renews the tenant's sender lease;
    /// `nil` when this instance no longer holds the tenant or nothing is ready.
    ///
    /// One statement: rows are locked with `FOR UPDATE SKIP LOCKED`, cut to the longest run of whole units within
    /// the limits (the first unit always goes, so an odd head never blocks the tenant), and leased to this
    /// instance with the tenant lease's expiry. The rows are updated through an array of their sequences (an
    /// index scan on the primary key whatever the planner's statistics say about a young table). Rows of an expired lease (a killed instance's) are claimed again, first.
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
        let owner = configuration.owner
        let lease = lease ?? configuration.lease
        do {
            let rows = try await client.query(
                """
                WITH renewed AS (
                    UPDATE refiner_segment_tenants
                    SET sender_until = now() + \(lease.milliseconds) * interval '1 millisecond'
                    WHERE tenant = \(tenant) AND sender_owner = \(owner)
                    RETURNING sender_until
                ), locked AS (
                    SELECT o.sequence, o.unit, o.unit_size, octet_length(o.payload) + 1 AS bytes
                    FROM refiner_segment_outbox AS o
                    WHERE o.tenant = \(tenant)
                      AND (o.lease_owner IS NULL OR o.lease_until <= now())
                      AND EXISTS (SELECT 1 FROM renewed)
                    ORDER BY o.sequence
                    LIMIT \(maximumMessages)
                    FOR UPDATE SKIP LOCKED
                ), units AS (
                    SELECT unit, min(sequence) AS first, count(*) AS present, max(unit_size) AS size,
                        sum(sum(bytes)) OVER (ORDER BY min(sequence)) AS running
                    FROM locked GROUP BY unit
                ), chosen AS (
                    SELECT unit FROM units
                    WHERE first = (SELECT min(first) FROM units)
                       OR first < coalesce(
                           (SELECT min(first) FROM units WHERE present < size OR running > \(maximumBytes)),
                           9223372036854775807)
                ), picked AS (
                    SELECT array_agg(sequence) AS sequences FROM locked WHERE unit IN (SELECT unit FROM chosen)
                )
                UPDATE refiner_segment_outbox AS o
                SET lease_owner = \(owner), lease_until = (SELECT sender_until FROM renewed), attempts = o.attempts + 1
                WHERE o.tenant = \(tenant) AND o.sequence = ANY((SELECT sequences FROM picked)::int8[])
                RETURNING o.sequence, o.unit, o.message_id, o.response_id, o.kind, o.payload, o.attempts,
                    o.first_failure_at, o.lease_until, now(), o.failures, o.retry_count
                """,
                logger: logger
            )
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
                owner: owner,
                claimedAt: claimedAt,
                leaseUntil: leaseUntil
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "claiming a batch of tenant \(tenant)")
        }
    }

    /// Takes (or renews) this instance's sender lease on one tenant; `false` when another instance holds it or
    /// the tenant is paused.
    public func acquire(tenant: String, lease: Duration? = nil) async throws -> Bool {
        let lease = lease ?? configuration.lease
        do {
            let rows = try await client.query(
                """
                INSERT INTO refiner_segment_tenants AS t (tenant, sender_owner, sender_until)
                VALUES (\(tenant), \(configuration.owner), now() + \(lease.milliseconds) * interval '1 millisecond')
                ON CONFLICT (tenant) DO UPDATE
                SET sender_owner = EXCLUDED.sender_owner, sender_until = EXCLUDED.sender_until
                WHERE (t.sender_owner IS NULL OR t.sender_until <= now() OR t.sender_owner = EXCLUDED.sender_owner)
                  AND (t.paused_until IS NULL OR t.paused_until <= now())
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
    /// lease ran out and another instance claimed the tenant).
    public func renew(_ batch: OutboxBatch) async throws -> Bool {
        do {
            let rows = try await client.query(
                """
                WITH renewed AS (
                    UPDATE refiner_segment_tenants
                    SET sender_until = now() + \(configuration.lease.milliseconds) * interval '1 millisecond'
                    WHERE tenant = \(batch.tenant) AND sender_owner = \(batch.owner)
                    RETURNING sender_until
                ), rows AS (
                    UPDATE refiner_segment_outbox SET lease_until = (SELECT sender_until FROM renewed)
                    WHERE tenant = \(batch.tenant) AND sequence = ANY(\(batch.sequences)::int8[])
                      AND lease_owner = \(batch.owner) AND EXISTS (SELECT 1 FROM renewed)
                    RETURNING 1
                )
                SELECT count(*) FROM rows
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
    /// tenant still has messages.
    public func releaseTenant(_ tenant: String) async throws {
        do {
            try await client.query(
                """
                WITH released AS (
                    UPDATE refiner_segment_tenants SET sender_owner = NULL
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
