import Foundation
import Logging
import NIOCore
import PostgresNIO
import RefinerSegment

/// A message store on PostgreSQL shared by every instance of a service: the transactional outbox.
///
/// The host enqueues Segment messages, on their own or inside its own transaction so that its write and the
/// messages commit together (no dual write):
///
/// ```swift
/// try await client.withTransaction(logger: logger) { connection in
///     try await connection.query("INSERT INTO responses ...", logger: logger)
///     try await outbox.enqueue([messages], tenant: "acme", on: connection)
/// }
/// ```
///
/// Instances deliver with ``PostgresOutboxSender``, or drive the claims themselves: a tenant is taken with
/// ``acquireTenant(excluding:)`` (one active sender per tenant across the cluster, so its messages go out in
/// order), a batch with ``claimBatch(of:maximumMessages:maximumBytes:)`` (`FOR UPDATE SKIP LOCKED` and a lease),
/// then settled. Every operation is one or two SQL statements; none holds a transaction open across a network
/// call to Segment. The tables come from ``PostgresSchema``.
///
/// A value type holding the client: copies share the client's pool. `Sendable`; every method may be called from
/// any task at the same time.
public struct PostgresOutbox: Sendable {
    /// How this instance claims and how long its leases last.
    public struct Configuration: Sendable, Hashable {
        /// This instance's name in leases (`lease_owner`, `sender_owner`): unique per process in the cluster.
        /// The default joins the host name, the process id and a random suffix.
        public var owner: String
        /// How long a claim lasts unless renewed: 30 s. A killed instance's batches wait this long before
        /// another instance sends them; a live sender renews its leases at a third of it.
        public var lease: Duration
        /// The `LISTEN/NOTIFY` channel that wakes idle senders when messages are enqueued.
        public var channel: String

        /// Creates a configuration.
        public init(
            owner: String = Configuration.defaultOwner(),
            lease: Duration = .seconds(30),
            channel: String = "refiner_segment_outbox"
        ) {
            self.owner = owner
            self.lease = lease
            self.channel = channel
        }

        /// `host:pid:random`, unique enough to tell the instances of a cluster apart.
        public static func defaultOwner() -> String {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            return "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(suffix)"
        }
    }

    /// The client the store runs its statements through; the host runs it (`client.run()`).
    public let client: PostgresClient
    /// How this instance claims.
    public let configuration: Configuration
    let logger: Logger
    /// The claims handed to the core pipeline, shared by copies of this value.
    let claims = ClaimRegistry()

    /// Creates a store on a client whose database has been migrated with ``PostgresSchema/migrate(client:logger:)``.
    public init(client: PostgresClient, configuration: Configuration = Configuration(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Appends units of messages for a tenant, durably: when it returns, the rows are committed.
    ///
    /// One statement for all the units (arrays bound as parameters and unnested), which also registers the
    /// tenant and notifies idle senders. A unit (an identify and its group) is never split across batches.
    /// - Throws: ``PostgresStoreError`` (``PostgresStoreError/Code/invalidInput`` for an empty tenant or a unit
    ///   over Segment's batch limits); nothing is stored then.
    public func enqueue(_ units: [[SegmentMessage]], tenant: String) async throws {
        guard units.contains(where: { !$0.isEmpty }) else { return }
        do {
            try await client.withConnection { connection in
                try await enqueue(units, tenant: tenant, on: connection)
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "enqueuing for tenant \(tenant)")
        }
    }

    /// Appends units of messages on the host's connection, inside the host's transaction when it has one open:
    /// the messages commit (and wake senders) with the host's own writes, or roll back with them.
    ///
    /// - Throws: as ``enqueue(_:tenant:)``.
    public func enqueue(_ units: [[SegmentMessage]], tenant: String, on connection: PostgresConnection) async throws {
        guard !tenant.isEmpty else { throw PostgresStoreError(.invalidInput, "a tenant name cannot be empty") }
        var unitOrdinals: [Int32] = []
        var unitSizes: [Int32] = []
        var messageIDs: [String] = []
        var responseIDs: [String] = []
        var kinds: [String] = []
        var payloads: [ByteBuffer] = []
        var ordinal: Int32 = 0
        for unit in units where !unit.isEmpty {
            let bytes = unit.reduce(0) { $0 + $1.byteCount + 1 }
            guard unit.count <= SegmentBatch.maximumMessages, bytes <= SegmentBatch.maximumBytes else {
                throw PostgresStoreError(
                    .invalidInput,
                    "a unit of \(unit.count) messages (\(bytes) bytes) for tenant \(tenant) cannot fit one batch"
                )
            }
            for message in unit {
                unitOrdinals.append(ordinal)
                unitSizes.append(Int32(unit.count))
                messageIDs.append(message.messageID)
                responseIDs.append(message.responseID ?? "")
                kinds.append(message.kind.rawValue)
                payloads.append(ByteBuffer(bytes: message.json))
            }
            ordinal += 1
        }
        guard !messageIDs.isEmpty else { return }
        do {
            // nextval runs in the unnested order (the subquery's), so sequences follow the units' order and the
            // order within each unit; `unit` is the smallest sequence of the unit's rows.
            try await connection.query(
                """
                WITH registered AS (
                    INSERT INTO refiner_segment_tenants (tenant) VALUES (\(tenant)) ON CONFLICT DO NOTHING
                ), notified AS (
                    SELECT pg_notify(\(configuration.channel), \(tenant))
                ), numbered AS (
                    SELECT nextval('refiner_segment_outbox_sequence') AS sequence, input.*
                    FROM (
                        SELECT * FROM unnest(
                            \(unitOrdinals)::int4[], \(unitSizes)::int4[], \(messageIDs)::text[],
                            \(responseIDs)::text[], \(kinds)::text[], \(payloads)::bytea[]
                        ) WITH ORDINALITY AS i(ordinal, size, message_id, response_id, kind, payload, position)
                        ORDER BY position
                    ) AS input
                )
                INSERT INTO refiner_segment_outbox
                    (tenant, sequence, unit, unit_size, message_id, response_id, kind, payload)
                SELECT \(tenant), sequence, min(sequence) OVER (PARTITION BY ordinal), size, message_id,
                    nullif(response_id, ''), kind, payload
                FROM numbered CROSS JOIN notified
                """,
                logger: logger
            )
        } catch {
            throw PostgresStoreError.wrapping(error, "enqueuing \(messageIDs.count) messages for tenant \(tenant)")
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down: what the SQL statements bind as `int8 * interval '1 millisecond'`.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
