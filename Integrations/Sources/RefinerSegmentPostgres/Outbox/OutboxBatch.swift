import Foundation
import RefinerSegment

/// A message held in the outbox, with what the store knows about its delivery.
public struct OutboxMessage: Sendable, Hashable {
    /// The tenant the message belongs to.
    public var tenant: String
    /// Its place in the outbox: increasing in the order messages were enqueued, unique across tenants.
    public var sequence: Int64
    /// The sequence of the first message of the unit it was enqueued with (an identify and its group).
    public var unit: Int64
    /// The message itself, exactly the bytes that go into a batch.
    public var message: SegmentMessage
    /// How many times the message was claimed for sending, this claim included.
    public var attempts: Int
    /// When the first attempt to send it failed, when one did (server time).
    public var firstFailureAt: Date?
    /// Failed attempts that count against the attempt bound, as the pipeline recorded them.
    public var failures: Int = 0
    /// The `X-Retry-Count` of the next attempt, as the pipeline recorded it.
    public var retryCount: Int = 0
}

/// A batch claimed from the outbox: whole units of one tenant, oldest first, under a lease.
///
/// Until ``leaseUntil`` no other instance claims these messages; the claimer settles them (delivered, failed,
/// retry later, paused) or renews the lease before it runs out. After it runs out (the claimer was killed or
/// stalled), the tenant's next sender claims them again: at-least-once, harmless because messageIds are
/// deterministic and Segment drops the second copy.
public struct OutboxBatch: Sendable, Hashable {
    /// The tenant whose messages these are.
    public var tenant: String
    /// The messages, in sending order.
    public var messages: [OutboxMessage]
    /// The instance that holds the lease.
    public var owner: String
    /// The database server's time when the batch was claimed.
    public var claimedAt: Date
    /// The end of the lease, in the database server's time.
    public var leaseUntil: Date

    /// The messages' sequences, in sending order.
    public var sequences: [Int64] { messages.map(\.sequence) }
    /// The Segment messages, in sending order.
    public var segmentMessages: [SegmentMessage] { messages.map(\.message) }
}

/// A tenant's sender lease: while it lasts, only its owner claims the tenant's batches, so they go out in order.
public struct TenantLease: Sendable, Hashable {
    /// The tenant.
    public var tenant: String
    /// The end of the lease, in the database server's time; claiming a batch renews it.
    public var until: Date
}
