/// A store whose append comes in two steps: written in order with other appends (fast, no `fsync`), then
/// waited for until durable by the store's policy. The pipeline's group append holds its turn only for the
/// first step, so the next group is written while this one waits for its `fsync`, and one `fsync` pass
/// covers every group written before it started (pipelined group commit).
///
/// ``SegmentMessageStore/append(_:tenant:)`` of a conforming store is the two steps one after the other.
///
/// Conforming types must make units claimable in the order they were written, whatever order the waits
/// for durability return in: the pipeline lets the next `record` of an account go on once this one's units
/// are written (``SegmentPipeline/record(_:profiles:builder:)``), relying on it to be sent after them. The
/// pipeline calls every staged append's ``SegmentStagedAppend/durable``, so a store may have a later one
/// wait for an earlier one.
package protocol SegmentStagedAppendStore: SegmentMessageStore {
    /// Writes the units that fit under the store's bound (a prefix of them); the result says how many and
    /// waits until they are durable. The units are not claimable, and not counted by `usage`, before that
    /// wait returns.
    func stageAppend(_ units: [[SegmentMessage]], tenant: String) async throws -> SegmentStagedAppend
}

/// Units written to a store and not yet durable: how many were taken, and the wait for their durability.
package struct SegmentStagedAppend: Sendable {
    /// The units taken: a prefix of those given.
    package var accepted: Int
    /// Returns once the taken units are durable by the store's policy (and claimable); throws when they
    /// are not (none of them was acknowledged).
    package var durable: @Sendable () async throws -> Void

    package init(accepted: Int, durable: @escaping @Sendable () async throws -> Void) {
        self.accepted = accepted
        self.durable = durable
    }
}
