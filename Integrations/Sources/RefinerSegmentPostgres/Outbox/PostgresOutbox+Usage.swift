import Foundation
import PostgresNIO

/// What the outbox holds for one tenant, for an operator and for metrics.
public struct OutboxTenantUsage: Sendable, Hashable {
    /// The tenant.
    public var tenant: String
    /// Messages waiting (leased ones included).
    public var messages: Int
    /// Bytes of message JSON waiting.
    public var bytes: Int
    /// When the oldest waiting message was enqueued.
    public var oldestEnqueuedAt: Date?
    /// The end of a `Retry-After` pause in force.
    public var pausedUntil: Date?
    /// The end of a retry wait in force.
    public var retryAt: Date?
    /// The instance holding the tenant's live sender lease.
    public var sender: String?
    /// Messages in the dead-letter table.
    public var deadLetters: Int
}

extension PostgresOutbox {
    /// What the outbox holds, per tenant, in tenant order (one statement; counts scan the outbox's rows).
    public func usage() async throws -> [OutboxTenantUsage] {
        do {
            let rows = try await client.query(
                """
                SELECT t.tenant, o.messages, o.bytes, o.oldest,
                    CASE WHEN t.paused_until > now() THEN t.paused_until END,
                    CASE WHEN t.retry_at > now() THEN t.retry_at END,
                    CASE WHEN t.sender_until > now() THEN t.sender_owner END,
                    d.messages
                FROM refiner_segment_tenants AS t
                CROSS JOIN LATERAL (
                    SELECT count(*) AS messages, coalesce(sum(octet_length(payload)), 0) AS bytes,
                        min(enqueued_at) AS oldest
                    FROM refiner_segment_outbox WHERE tenant = t.tenant
                ) AS o
                CROSS JOIN LATERAL (
                    SELECT count(*) AS messages FROM refiner_segment_dead_letters WHERE tenant = t.tenant
                ) AS d
                ORDER BY t.tenant
                """,
                logger: logger
            )
            var usage: [OutboxTenantUsage] = []
            for try await row in rows.decode((String, Int, Int, Date?, Date?, Date?, String?, Int).self) {
                usage.append(
                    OutboxTenantUsage(
                        tenant: row.0,
                        messages: row.1,
                        bytes: row.2,
                        oldestEnqueuedAt: row.3,
                        pausedUntil: row.4,
                        retryAt: row.5,
                        sender: row.6,
                        deadLetters: row.7
                    )
                )
            }
            return usage
        } catch {
            throw PostgresStoreError.wrapping(error, "reading the outbox's usage")
        }
    }

    /// How long until a tenant with messages may next be acquired (a pause, a retry wait or another instance's
    /// lease runs out); `nil` when no tenant waits on a time (all idle, or some ready now).
    func nextWakeUp() async throws -> Duration? {
        let rows = try await client.query(
            """
            SELECT extract(epoch FROM min(w) - now())::float8 FROM (
                SELECT greatest(
                    coalesce(t.paused_until, '-infinity'), coalesce(t.retry_at, '-infinity'),
                    CASE WHEN t.sender_owner IS NOT NULL THEN t.sender_until ELSE '-infinity' END) AS w
                FROM refiner_segment_tenants AS t
                CROSS JOIN LATERAL (
                    SELECT 1 FROM refiner_segment_outbox AS o WHERE o.tenant = t.tenant ORDER BY o.sequence LIMIT 1
                ) AS waiting
            ) AS waits
            WHERE w > now()
            """,
            logger: logger
        )
        for try await (seconds) in rows.decode(Double?.self) {
            guard let seconds else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        return nil
    }
}
