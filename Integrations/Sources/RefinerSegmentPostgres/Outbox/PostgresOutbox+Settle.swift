import Foundation
import PostgresNIO
import RefinerSegment

extension PostgresOutbox {
    /// Deletes delivered messages, in one statement for the whole batch, and clears the tenant's retry wait.
    ///
    /// Whoever holds the rows now, delivered is a fact: a claimer whose lease ran out deletes them too (the
    /// instance that claimed them since has sent a copy Segment drops by messageId). The sequences are joined as an
    /// `unnest` (index probes), never compared row by row against the whole array.
    public func settleDelivered(_ messages: [OutboxMessage]) async throws {
        guard let tenant = messages.first?.tenant else { return }
        let sequences = messages.map(\.sequence)
        do {
            try await client.query(
                """
                WITH deleted AS (
                    DELETE FROM refiner_segment_outbox AS o USING unnest(\(sequences)::int8[]) AS s(sequence)
                    WHERE o.tenant = \(tenant) AND o.sequence = s.sequence
                    RETURNING 1
                )
                UPDATE refiner_segment_tenants SET retry_at = NULL
                WHERE tenant = \(tenant) AND retry_at IS NOT NULL AND EXISTS (SELECT 1 FROM deleted)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "deleting \(messages.count) delivered messages of \(tenant)")
        }
    }

    /// Moves messages that failed for good to `refiner_segment_dead_letters` with the reason, in one statement,
    /// and returns the ones it moved.
    ///
    /// Only messages this instance still holds are moved: leased to it, or covered by its claim mark on a tenant
    /// it still holds. A holder whose lease ran out and was taken (a stall) leaves the messages to the new
    /// holder, which claimed them again, may deliver them and gives its own verdict; moving them would make a
    /// message both delivered and a dead letter. (Delivered, by contrast, is a fact whoever holds the rows:
    /// ``settleDelivered(_:)``.)
    ///
    /// The reason is stored as given: pass a redacted one (the pipeline's reasons never carry the write key). The
    /// attempts stored are the messages' own (``OutboxMessage/attempts``: the claim that failed included).
    @discardableResult
    public func deadLetter(_ messages: [OutboxMessage], reason: String) async throws -> [OutboxMessage] {
        guard let tenant = messages.first?.tenant else { return [] }
        let sequences = messages.map(\.sequence)
        let attempts = messages.map { Int32(clamping: $0.attempts) }
        let owner = configuration.owner
        var moved: Set<Int64> = []
        do {
            let rows = try await client.query(
                """
                WITH holder AS (
                    SELECT claimed_through FROM refiner_segment_tenants
                    WHERE tenant = \(tenant) AND sender_owner = \(owner)
                ), moved AS (
                    DELETE FROM refiner_segment_outbox
                    WHERE tenant = \(tenant) AND sequence = ANY(\(sequences)::int8[])
                      AND (lease_owner = \(owner)
                        OR (lease_owner IS NULL AND sequence <= (SELECT claimed_through FROM holder)))
                    RETURNING tenant, sequence, message_id, response_id, kind, payload, enqueued_at, attempts
                ), claimed AS (
                    SELECT * FROM unnest(\(sequences)::int8[], \(attempts)::int4[]) AS c(sequence, attempts)
                ), kept AS (
                    INSERT INTO refiner_segment_dead_letters
                        (tenant, sequence, message_id, response_id, kind, payload, enqueued_at, attempts, reason)
                    SELECT m.tenant, m.sequence, m.message_id, m.response_id, m.kind, m.payload, m.enqueued_at,
                        greatest(m.attempts, c.attempts), \(reason)
                    FROM moved AS m LEFT JOIN claimed AS c ON c.sequence = m.sequence
                    ON CONFLICT (tenant, sequence) DO NOTHING
                )
                SELECT sequence FROM moved
                """,
                logger: logger
            )
            for try await (sequence) in rows.decode(Int64.self) { moved.insert(sequence) }
        } catch {
            throw PostgresStoreError.wrapping(error, "moving \(messages.count) failed messages of \(tenant)")
        }
        return messages.filter { moved.contains($0.sequence) }
    }

    /// Returns a batch that failed for now: its lease ends, the failed attempt is counted, the time of its first
    /// failure is kept, and the whole tenant waits `delay` (its later messages stay behind it, so order holds) on
    /// every instance.
    ///
    /// Only the tenant's holder sets the wait: a holder whose lease ran out and was taken (a stall) leaves the
    /// tenant to its new holder, which claimed the batch again and gets its own answer.
    ///
    /// The holder's claim mark goes back before the batch, so the batch is claimed first when the wait ends. (The
    /// mark is read without a lock: the main `UPDATE` of the tenant row may run before the `returned` CTE, and a
    /// locking read of a row this statement already updated finds nothing.)
    public func retryLater(_ batch: OutboxBatch, after delay: Duration) async throws {
        let first = batch.sequences.min() ?? 0
        do {
            try await client.query(
                """
                WITH holder AS (
                    SELECT claimed_through FROM refiner_segment_tenants
                    WHERE tenant = \(batch.tenant) AND sender_owner = \(batch.owner)
                ), returned AS (
                    UPDATE refiner_segment_outbox
                    SET lease_owner = NULL, lease_until = NULL, first_failure_at = coalesce(first_failure_at, now()),
                        attempts = attempts + CASE WHEN lease_owner IS NULL THEN 1 ELSE 0 END
                    WHERE tenant = \(batch.tenant) AND sequence = ANY(\(batch.sequences)::int8[])
                      AND (lease_owner = \(batch.owner)
                        OR (lease_owner IS NULL AND sequence <= (SELECT claimed_through FROM holder)))
                    RETURNING 1
                )
                UPDATE refiner_segment_tenants
                SET retry_at = now() + \(delay.milliseconds) * interval '1 millisecond',
                    claimed_through = CASE WHEN claimed_through IS NOT NULL
                        THEN least(claimed_through, \(first) - 1) END
                WHERE tenant = \(batch.tenant) AND sender_owner = \(batch.owner)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "scheduling a retry of tenant \(batch.tenant)")
        }
    }

    /// Pauses a tenant on every instance (a `Retry-After` answer) and returns the batch without spending an attempt.
    ///
    /// No instance acquires the tenant until the pause ends; a pause already longer is kept. The holder's claim
    /// mark goes back before the batch; rows of a store-protocol claim lose their lease and get their attempt back.
    public func pause(_ batch: OutboxBatch, for duration: Duration) async throws {
        let first = batch.sequences.min() ?? 0
        do {
            try await client.query(
                """
                WITH returned AS (
                    UPDATE refiner_segment_outbox
                    SET lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0)
                    WHERE tenant = \(batch.tenant) AND sequence = ANY(\(batch.sequences)::int8[])
                      AND lease_owner = \(batch.owner)
                    RETURNING 1
                )
                UPDATE refiner_segment_tenants
                SET paused_until = greatest(
                        coalesce(paused_until, now()), now() + \(duration.milliseconds) * interval '1 millisecond'),
                    claimed_through = CASE WHEN sender_owner = \(batch.owner) AND claimed_through IS NOT NULL
                        THEN least(claimed_through, \(first) - 1) ELSE claimed_through END
                WHERE tenant = \(batch.tenant)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "pausing tenant \(batch.tenant)")
        }
    }

    /// Pauses a tenant on every instance without a batch in hand (an unknown tenant, an operator's decision).
    public func pause(tenant: String, for duration: Duration) async throws {
        do {
            try await client.query(
                """
                UPDATE refiner_segment_tenants
                SET paused_until = greatest(
                    coalesce(paused_until, now()), now() + \(duration.milliseconds) * interval '1 millisecond')
                WHERE tenant = \(tenant)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "pausing tenant \(tenant)")
        }
    }

    /// When the tenant's pause ends, in the database server's time; `nil` when it is not paused.
    public func pausedUntil(tenant: String) async throws -> Date? {
        do {
            let rows = try await client.query(
                """
                SELECT paused_until FROM refiner_segment_tenants
                WHERE tenant = \(tenant) AND paused_until > now()
                """,
                logger: logger
            )
            for try await (until) in rows.decode(Date.self) { return until }
            return nil
        } catch {
            throw PostgresStoreError.wrapping(error, "reading the pause of tenant \(tenant)")
        }
    }
}

extension PostgresOutbox {
    /// Records a retry schedule on claimed messages and makes the whole tenant wait until `nextAttempt` on every
    /// instance. The messages stay this instance's: their lease and the tenant's are held until a lease past
    /// `nextAttempt`, so no other instance sends them while this one waits to retry.
    public func recordRetry(
        _ messages: [OutboxMessage],
        failures: Int,
        retryCount: Int,
        firstFailure: Date?,
        nextAttempt: Date?
    ) async throws {
        guard let tenant = messages.first?.tenant else { return }
        let lease = configuration.lease.milliseconds
        do {
            try await client.query(
                """
                WITH scheduled AS (
                    UPDATE refiner_segment_outbox
                    SET failures = \(Int32(clamping: failures)), retry_count = \(Int32(clamping: retryCount)),
                        first_failure_at = coalesce(first_failure_at, \(firstFailure)),
                        lease_until = greatest(lease_until, \(nextAttempt) + \(lease) * interval '1 millisecond')
                    WHERE tenant = \(tenant) AND sequence = ANY(\(messages.map(\.sequence))::int8[])
                      AND lease_owner = \(configuration.owner)
                    RETURNING 1
                )
                UPDATE refiner_segment_tenants
                SET retry_at = \(nextAttempt),
                    sender_until = greatest(sender_until, \(nextAttempt) + \(lease) * interval '1 millisecond')
                WHERE tenant = \(tenant)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "recording a retry of tenant \(tenant)")
        }
    }

    /// Gives claimed messages back (their lease ends, their retry state stays), at the front of the tenant.
    public func returnMessages(_ messages: [OutboxMessage], of batch: OutboxBatch) async throws {
        guard !messages.isEmpty else { return }
        do {
            try await client.query(
                """
                UPDATE refiner_segment_outbox SET lease_owner = NULL, lease_until = NULL
                WHERE tenant = \(batch.tenant) AND sequence = ANY(\(messages.map(\.sequence))::int8[])
                  AND lease_owner = \(batch.owner)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "returning messages of tenant \(batch.tenant)")
        }
    }

    /// Ends every lease an owner holds on a tenant (an earlier run of this instance under the same name).
    public func freeLeases(ownedBy owner: String, tenant: String) async throws {
        do {
            try await client.query(
                """
                WITH rows AS (
                    UPDATE refiner_segment_outbox SET lease_owner = NULL, lease_until = NULL
                    WHERE tenant = \(tenant) AND lease_owner = \(owner)
                    RETURNING 1
                )
                UPDATE refiner_segment_tenants SET sender_owner = NULL, claimed_through = NULL
                WHERE tenant = \(tenant) AND sender_owner = \(owner)
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "freeing the leases of tenant \(tenant)")
        }
    }

    /// Sets (or, with `nil`, clears) a tenant's pause to a wall-clock end, creating the tenant's row if needed.
    public func setPausedUntil(_ end: Date?, tenant: String) async throws {
        do {
            try await client.query(
                """
                INSERT INTO refiner_segment_tenants AS t (tenant, paused_until) VALUES (\(tenant), \(end))
                ON CONFLICT (tenant) DO UPDATE SET paused_until = EXCLUDED.paused_until
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "setting the pause of tenant \(tenant)")
        }
    }
}
