extension PostgresSchema {
    /// Version 1: tenants, the outbox (hash-partitioned by tenant), dead letters, profile traits.
    ///
    /// Kept word for word in `Docs/RunningSeveralInstances.md`; change both together. Every statement is
    /// idempotent on its own (`IF NOT EXISTS`), so a half-applied schema from a hand-run script heals too.
    static let version1 = Migration(
        version: 1,
        summary: "tenants, outbox partitioned by tenant, dead letters, profile traits",
        statements: [
            // One row per tenant: the sender lease (one active sender per tenant across the cluster) and the
            // pauses every instance honours. `sender_until` stays set after a release: it orders tenants by
            // when they were last served.
            """
            CREATE TABLE IF NOT EXISTS refiner_segment_tenants (
                tenant text PRIMARY KEY,
                sender_owner text,
                sender_until timestamptz,
                paused_until timestamptz,
                retry_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE SEQUENCE IF NOT EXISTS refiner_segment_outbox_sequence AS bigint",
            // One row per message. `unit` is the sequence of the first message of the unit the message was
            // enqueued with (an identify and its group), `unit_size` the unit's message count: a claim never
            // splits a unit. `lease_owner`/`lease_until` mark a claimed batch.
            """
            CREATE TABLE IF NOT EXISTS refiner_segment_outbox (
                tenant text NOT NULL,
                sequence bigint NOT NULL,
                unit bigint NOT NULL,
                unit_size integer NOT NULL,
                message_id text NOT NULL,
                response_id text,
                kind text NOT NULL,
                payload bytea NOT NULL,
                enqueued_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                failures integer NOT NULL DEFAULT 0,
                retry_count integer NOT NULL DEFAULT 0,
                first_failure_at timestamptz,
                lease_owner text,
                lease_until timestamptz,
                PRIMARY KEY (tenant, sequence)
            ) PARTITION BY HASH (tenant)
            """,
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p0 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 0)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p1 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 1)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p2 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 2)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p3 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 3)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p4 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 4)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p5 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 5)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p6 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 6)",
            "CREATE TABLE IF NOT EXISTS refiner_segment_outbox_p7 PARTITION OF refiner_segment_outbox "
                + "FOR VALUES WITH (MODULUS 8, REMAINDER 7)",
            // Messages that failed for good, with the reason, for the host to inspect or enqueue again.
            """
            CREATE TABLE IF NOT EXISTS refiner_segment_dead_letters (
                tenant text NOT NULL,
                sequence bigint NOT NULL,
                message_id text NOT NULL,
                response_id text,
                kind text NOT NULL,
                payload bytea NOT NULL,
                enqueued_at timestamptz NOT NULL,
                attempts integer NOT NULL,
                reason text NOT NULL,
                failed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant, sequence)
            )
            """,
            // One row per collected trait of a user ('user'), a user known by an anonymous id only ('anonymous')
            // or an account ('account'). An answer is ordered by its response's completion time in microseconds
            // since 1970 and its response id (bytes): the later one wins. The user's email is the row with key
            // '$email' (never a trait key: those match ^[a-z0-9_]+$). `kind` says how to read `value` back.
            """
            CREATE TABLE IF NOT EXISTS refiner_segment_profile_traits (
                scope text NOT NULL CHECK (scope IN ('user', 'anonymous', 'account')),
                owner_id text NOT NULL,
                key text NOT NULL,
                kind text NOT NULL,
                value jsonb NOT NULL,
                answered_us bigint NOT NULL,
                response_id text NOT NULL,
                PRIMARY KEY (scope, owner_id, key)
            )
            """,
        ]
    )
}
