#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where a pipeline keeps the messages it accepted until they are delivered or fail: memory
/// (``InMemoryMessageStore``), a directory (`RefinerSegmentFileStore`), or a database outbox.
///
/// The pipeline appends units (an `identify` and its `group`), claims batches from the front, sends them
/// and settles every message of a claim. A store decides where messages live and how long they survive;
/// the pipeline decides what to send and when.
///
/// A conforming type must guarantee:
/// - **Durability before return.** When ``append(_:tenant:)`` returns, the units it reports accepted
///   survive what the store promises to survive (nothing, for memory; a crash of the process or of the
///   machine, per the file store's sync policy). The pipeline's `record` returns only then.
/// - **Order.** Claims come from the front: a tenant's messages are claimed in the order they were
///   appended, a unit is never split across claims, and a claim holds whole units up to the bounds given.
/// - **Exactly one settlement.** Every message is settled once (``SegmentSettlement/delivered``,
///   ``SegmentSettlement/failed(_:)``), or released back (``release(_:)``) to be claimed again. A claim
///   that is never settled (its holder died) is claimable again after ``recover(tenant:)`` or once its lease
///   passes, so a message is delivered at least once.
/// - **Bounds.** A store that is full accepts a prefix of the units (possibly none) and reports how many:
///   the pipeline then waits for room or fails fast, as its configuration says.
/// - **Tenants apart.** Every call names a tenant (`"default"` for a single pipeline); one tenant's
///   messages, claims, retry state and pause never touch another's.
/// - **Thread safety.** Calls may come from several tasks at once.
///
/// Errors are thrown as they are (untyped); the pipeline reports them with the code
/// ``SegmentDeliveryError/Code/storeFailure`` and the error as ``SegmentDeliveryError/underlying``.
public protocol SegmentMessageStore: Sendable {
    /// Appends units in order, each one whole; returns how many units were accepted (a prefix), fewer
    /// than given when the store is full. Returns only when the accepted units are as durable as the store
    /// promises.
    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int

    /// Takes the next batch from the front, at most `maximumMessages` messages and `maximumBytes` of message
    /// JSON and commas (a single unit always fits); `nil` when nothing is ready to be claimed.
    ///
    /// - Parameters:
    ///   - tenant: Whose messages to claim.
    ///   - maximumMessages: The most messages in the batch.
    ///   - maximumBytes: The most bytes of message JSON and commas in the batch.
    ///   - lease: How long the claim is the caller's; a store shared by several processes gives it to another
    ///     one afterwards. A store of one process may keep it until ``recover(tenant:)``.
    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?

    /// Settles the messages of a claim at `range` (indices into ``SegmentClaim/messages``): delivered,
    /// failed, or retried later (the claim stays with its holder; the retry state is kept so that a restart
    /// resumes the schedule). Once every message of a claim is delivered or failed, the claim is done.
    func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws

    /// Gives the unsettled messages of a claim back, at the front, to be claimed again (its retry state
    /// kept): the holder stops without knowing their fate (shutdown, cancellation).
    func release(_ claim: SegmentClaim) async throws

    /// Makes every claim of an earlier holder claimable again and reports what the store holds and what it
    /// found damaged. The pipeline calls it once when it starts running.
    func recover(tenant: String) async throws -> SegmentStoreRecovery

    /// What the store holds for a tenant now.
    func usage(tenant: String) async throws -> SegmentStoreUsage

    /// Records a `Retry-After` pause (a wall-clock end) for the tenant, or clears it with `nil`, so a
    /// restart honours it.
    func setPause(until end: Date?, tenant: String) async throws

    /// Removes and returns what is left, in order, when the store does not survive the process (memory);
    /// a durable store keeps it and returns nothing. The pipeline calls it when it stops.
    func handBack(tenant: String) async throws -> [SegmentMessage]
}

/// A batch taken from a store, the caller's until it settles or releases it.
public struct SegmentClaim: Sendable {
    /// The store's name for the claim, unique within the store.
    public var id: UInt64
    /// The tenant whose messages these are.
    public var tenant: String
    /// The messages, whole units in order.
    public var messages: [SegmentMessage]
    /// Where each unit ends in ``messages`` (an index past its last message), in order; the last is
    /// `messages.count`. A refused batch is split between units, never inside one.
    public var unitEnds: [Int]
    /// The retry state left by earlier attempts (after a restart, or a release).
    public var retryState: SegmentRetryState
    /// Units at the front that the store could not read back (not in ``messages``, and no longer
    /// claimable): the pipeline reports each as a failed outcome (code `storeFailure` when kept,
    /// `storeDamaged` when dropped) and counts their messages as done. A claim may hold only these, with no
    /// messages.
    public var unreadable: [Unreadable]

    /// Units a store could not read back for a claim: a read that kept failing (kept in the store), or a
    /// record damaged since it was written (dropped).
    public struct Unreadable: Sendable {
        /// How many messages they held.
        public var messageCount: Int
        /// Where they are, why they could not be read, and whether the store keeps them.
        public var detail: String
        /// The error the read failed with, if any.
        public var underlying: (any Error)?
        /// Whether the store still holds them (a read that failed: tried again later) rather than dropped
        /// them (damaged).
        public var isKept: Bool

        /// Creates a report.
        public init(messageCount: Int, detail: String, underlying: (any Error)? = nil, isKept: Bool) {
            self.messageCount = messageCount
            self.detail = detail
            self.underlying = underlying
            self.isKept = isKept
        }
    }

    /// Creates a claim; without `unitEnds`, every message is a unit of its own.
    public init(
        id: UInt64, tenant: String, messages: [SegmentMessage], unitEnds: [Int]? = nil,
        retryState: SegmentRetryState = .init(), unreadable: [Unreadable] = []
    ) {
        self.id = id
        self.tenant = tenant
        self.messages = messages
        self.unitEnds = unitEnds ?? Array(stride(from: 1, through: messages.count, by: 1))
        self.retryState = retryState
        self.unreadable = unreadable
    }
}

/// Where a batch stands in Segment's retry schedule; kept by the store so a restart resumes it.
public struct SegmentRetryState: Sendable, Hashable, Codable {
    /// Attempts that failed and counted against the attempt bound.
    public var failures: Int
    /// The `X-Retry-Count` of the next attempt.
    public var retryCount: Int
    /// When the first failure happened (wall clock, so it survives a restart); `nil` before any.
    public var firstFailure: Date?
    /// When the next attempt is due (wall clock); `nil` for at once.
    public var nextAttempt: Date?

    /// Creates a state; a fresh batch by default.
    public init(failures: Int = 0, retryCount: Int = 0, firstFailure: Date? = nil, nextAttempt: Date? = nil) {
        self.failures = failures
        self.retryCount = retryCount
        self.firstFailure = firstFailure
        self.nextAttempt = nextAttempt
    }
}

/// What became of messages of a claim, as the pipeline tells the store.
public enum SegmentSettlement: Sendable, Hashable {
    /// Segment accepted them: the store may forget them.
    case delivered
    /// They failed for good, for this reason (redacted text); the outcome carries the messages to the host.
    case failed(_ reason: String)
    /// The attempt failed and is retried later, by this schedule; the claim stays with its holder.
    case retry(SegmentRetryState)
}

/// What a store holds for a tenant.
public struct SegmentStoreUsage: Sendable, Hashable {
    /// Messages not yet settled (claimed or not).
    public var messages: Int
    /// Messages ready to be claimed now.
    public var claimableMessages: Int
    /// Bytes of message JSON (and commas) ready to be claimed now.
    public var claimableBytes: Int
    /// Bytes the store takes on its medium (memory or disk).
    public var storedBytes: Int
    /// When the oldest unsettled message was appended (wall clock), when the store knows it.
    public var oldestAppended: Date?
    /// The `Retry-After` pause in force (wall clock end), if any.
    public var pausedUntil: Date?

    /// Creates a usage report.
    public init(
        messages: Int = 0, claimableMessages: Int = 0, claimableBytes: Int = 0, storedBytes: Int = 0,
        oldestAppended: Date? = nil, pausedUntil: Date? = nil
    ) {
        self.messages = messages
        self.claimableMessages = claimableMessages
        self.claimableBytes = claimableBytes
        self.storedBytes = storedBytes
        self.oldestAppended = oldestAppended
        self.pausedUntil = pausedUntil
    }
}

/// What a store found when the pipeline started: what it holds, and what it could not read.
public struct SegmentStoreRecovery: Sendable {
    /// Messages waiting from before (claimable now).
    public var messages: Int
    /// The `Retry-After` pause left in force, if any (wall clock end).
    public var pausedUntil: Date?
    /// Records the store could not read back: each becomes a failed outcome, so nothing is lost unreported.
    public var damage: [SegmentStoreDamage]

    /// Creates a report.
    public init(messages: Int = 0, pausedUntil: Date? = nil, damage: [SegmentStoreDamage] = []) {
        self.messages = messages
        self.pausedUntil = pausedUntil
        self.damage = damage
    }
}

/// A stretch of a store that could not be read back (a bad checksum, a torn write).
public struct SegmentStoreDamage: Sendable, Hashable, CustomStringConvertible {
    /// Where: a file and offset, or a row.
    public var location: String
    /// How many bytes were dropped.
    public var byteCount: Int
    /// Whether it was the torn tail of the last write (a crash mid-write: never acknowledged to a caller
    /// under the sync-before-ack policy), rather than damage to a record once complete.
    public var isTornTail: Bool

    /// Creates a report.
    public init(location: String, byteCount: Int, isTornTail: Bool) {
        self.location = location
        self.byteCount = byteCount
        self.isTornTail = isTornTail
    }

    /// `12 bytes at segment-00000001.log offset 4096 (torn tail)`.
    public var description: String {
        "\(byteCount) bytes at \(location)" + (isTornTail ? " (torn tail)" : " (corrupt record)")
    }
}

extension SegmentMessageStore {
    /// The tenant of a single pipeline.
    public static var defaultTenant: String { "default" }
}
