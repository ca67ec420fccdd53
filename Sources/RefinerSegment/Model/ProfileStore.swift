/// Where collected profiles live: it merges each response into its user's and its account's records
/// atomically and returns the merged profiles that the response's calls are built on.
///
/// ```swift
/// let profiles = MemoryProfileStore()
/// try await pipeline.record(response, profiles: profiles, builder: builder)   // apply, build, record
/// ```
///
/// Conforming types must guarantee:
/// - **Atomic per record.** ``apply(_:)`` merges ``ProfileChanges`` into the user's record and the
///   account's record so that concurrent applies never lose one another's traits (two users of one account
///   answering at once both end up in the account). Merging is ``CollectedTraits``'s: by answer time, so it
///   is commutative and idempotent, and applying the same changes again changes nothing.
/// - **Returns what it stored.** The returned profiles are the records as they are right after this apply
///   (with this response's changes and every earlier apply), never a stale read.
/// - **One order per record.** ``recordingOrder`` is shared by every caller of this store; the pipeline's
///   ``SegmentPipeline/record(_:profiles:builder:)`` holds the response's records in it while it applies,
///   builds and records (until the messages are written in order, with a store that writes before it
///   syncs), so messages of one user (or account) are recorded in the order they were built.
/// - **Errors are thrown, never swallowed**: a store that cannot apply (I/O, a full bounded store that
///   refuses new records) throws, and the caller's response is not recorded.
/// - Cancellation: an apply that has started may finish; one that throws `CancellationError` applied
///   nothing.
public protocol ProfileStore: Sendable {
    /// Merges a response's changes into its user's and account's records, atomically, and returns the
    /// merged profiles.
    func apply(_ changes: ProfileChanges) async throws -> CollectedProfile

    /// The per-record order in which callers apply, build and record; one instance for the life of the
    /// store.
    var recordingOrder: ProfileRecordingOrder { get }
}
