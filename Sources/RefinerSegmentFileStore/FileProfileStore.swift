import Foundation
import RefinerSegment

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Collected profiles in a file, so that they outlive the process and memory does not grow with the
/// number of distinct users: a ``ProfileStore`` on Foundation and POSIX files alone.
///
/// ```swift
/// let profiles = try FileProfileStore(path: "profiles.db")
/// try await pipeline.record(response, profiles: profiles, builder: builder)
/// ```
///
/// Layout: `path` is an append-only log of checksummed records (each apply appends one record holding the
/// merged user and account profiles), and `path.index` an on-disk hash table from record key to its newest
/// entry in the log. Nothing but a few buffers is held in memory.
///
/// Crash safety: an apply is one `write` of one record, then the index slots; the index is only a cache of
/// the log, and on open the records the index does not cover yet are indexed again and a torn tail (a
/// process killed mid-write) is cut off, so every apply that returned is intact after a `kill -9`. Against
/// power loss, set ``Configuration/synchronizesWrites`` (an `fsync` of the log per apply; the index is
/// flushed at checkpoints, every 4 MiB of log and on close, before its header says what it covers). An
/// index found damaged is rebuilt from the log (``indexRebuilds``). A lock on the file
/// keeps a second store (in this or another process) out. The log grows with every apply; ``compact()``
/// rewrites it with the newest records only.
///
/// Thread safety: applies are serialized by a lock, so the store may be shared by every task of a host.
public final class FileProfileStore: ProfileStore {
    /// How the store writes.
    public struct Configuration: Sendable, Hashable {
        /// Whether each apply is flushed to the disk (`fsync`) before it returns: safe against power loss,
        /// at the cost of a disk flush per response (the index is flushed only at checkpoints, every 4 MiB of
        /// log, and an open after a power cut replays the log from the last one). Off by default: a crash of
        /// the process loses nothing either way.
        public var synchronizesWrites: Bool

        /// Creates a configuration.
        public init(synchronizesWrites: Bool = false) {
            self.synchronizesWrites = synchronizesWrites
        }
    }

    /// The log's path; the index is at `path + ".index"`.
    public let path: String
    /// How the store writes.
    public let configuration: Configuration
    /// The per-record order of ``SegmentPipeline/record(_:profiles:builder:)``.
    public let recordingOrder = ProfileRecordingOrder()
    private let storage: Locked<Storage>

    /// Opens the store at `path`, creating it when it does not exist.
    ///
    /// - Throws: ``FileProfileStoreError``: ``FileProfileStoreError/Code/locked`` when another store has the
    ///   file open, ``FileProfileStoreError/Code/corrupt`` when the file is not a profile store,
    ///   ``FileProfileStoreError/Code/io`` when a system call fails.
    public init(path: String, configuration: Configuration = Configuration()) throws(FileProfileStoreError) {
        self.path = path
        self.configuration = configuration
        self.storage = Locked(try Storage(path: path, synchronizes: configuration.synchronizesWrites))
    }

    /// The number of bytes of a torn or corrupt tail that opening the store cut off (a process killed
    /// mid-write leaves one; the apply it was writing had not returned).
    public var truncatedBytes: Int { storage.withLock { $0.truncatedBytes } }

    /// How many times the store found its index damaged (a bad checksum, a value out of range, a slot that
    /// points at no entry of its key) and rebuilt it from the log, since it was opened: on open, or when a
    /// lookup or compaction met the damage. The log holds every profile, so nothing is lost; a count above zero
    /// says the disk or something else changed the index file.
    public var indexRebuilds: Int { storage.withLock { $0.indexRebuilds } }

    /// The number of records (users and accounts) held.
    public var recordCount: Int { storage.withLock { $0.index.count } }

    /// Merges a response's changes into its records, atomically (one record written for both), and returns
    /// the merged profiles.
    ///
    /// - Throws: ``FileProfileStoreError`` when the file cannot be read or written; nothing is applied then
    ///   (a record written halfway is cut off on the next open).
    public func apply(_ changes: ProfileChanges) throws(FileProfileStoreError) -> CollectedProfile {
        try locked { storage throws(FileProfileStoreError) in try storage.apply(changes) }
    }

    /// The stored profile of a user record.
    public func user(_ key: ProfileKey) throws(FileProfileStoreError) -> UserProfile? {
        try locked { storage throws(FileProfileStoreError) in try storage.readUser(key) }
    }

    /// The stored profile of an account.
    public func account(id: String) throws(FileProfileStoreError) -> AccountProfile? {
        try locked { storage throws(FileProfileStoreError) in try storage.readAccount(id) }
    }

    /// Rewrites the log with the newest record of each key only, and the index with it: the disk space of
    /// superseded records comes back. Safe against a crash at any point (a new file is renamed over the old).
    public func compact() throws(FileProfileStoreError) {
        try locked { storage throws(FileProfileStoreError) in try storage.compact() }
    }

    /// Closes the files; later calls throw ``FileProfileStoreError/Code/closed``. Called on deinit too.
    public func close() {
        storage.withLock { $0.close() }
    }

    /// Runs `body` on the storage under the lock, keeping its typed error.
    private func locked<Result>(
        _ body: (inout Storage) throws(FileProfileStoreError) -> Result
    ) throws(FileProfileStoreError) -> Result {
        var failure: FileProfileStoreError?
        let result: Result? = storage.withLock { storage in
            do throws(FileProfileStoreError) {
                return try body(&storage)
            } catch {
                failure = error
                return nil
            }
        }
        if let failure { throw failure }
        return result!
    }

    deinit {
        storage.withLock { $0.close() }
    }
}
