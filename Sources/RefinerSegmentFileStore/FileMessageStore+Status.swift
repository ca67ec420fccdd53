import Foundation
import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileMessageStore {
    /// What a file store holds, for every tenant: what `refiner-segment store status` prints.
    public struct Status: Sendable, Hashable {
        /// What one tenant has in the store.
        public struct Tenant: Sendable, Hashable {
            /// The tenant's name (`"default"` for a single pipeline).
            public var name: String
            /// Messages not yet settled (delivered or failed), claimed or not.
            public var messages: Int
            /// Bytes of the tenant's records in the segment files.
            public var bytes: Int
            /// When the oldest unsettled message was accepted (wall clock, as stored in its record).
            public var oldestAppended: Date?
            /// The `Retry-After` pause in force, if any (wall-clock end).
            public var pausedUntil: Date?
        }

        /// Every tenant with messages or a pause, by name.
        public var tenants: [Tenant]
        /// The bytes of every segment file (what ``Configuration/maximumBytes`` bounds).
        public var storedBytes: Int
        /// How many segment files there are.
        public var segmentFiles: Int
        /// What could not be read back: found on open (a torn tail, a corrupt record), or on a later claim.
        public var damage: [SegmentStoreDamage]
    }

    /// What the store holds now, tenant by tenant. Reads one small header for each tenant's oldest message.
    public func status() async throws -> Status {
        var rows: [String: Status.Tenant] = [:]
        for queue in tenants where queue.messages > 0 {
            var appended: Date?
            if let front = queue.front { appended = try appendedAt(front) }
            rows[queue.name] = Status.Tenant(
                name: queue.name, messages: queue.messages, bytes: queue.storedBytes, oldestAppended: appended,
                pausedUntil: pauses[queue.name])
        }
        for (name, end) in pauses where rows[name] == nil {
            rows[name] = Status.Tenant(name: name, messages: 0, bytes: 0, oldestAppended: nil, pausedUntil: end)
        }
        return Status(
            tenants: rows.values.sorted { $0.name < $1.name }, storedBytes: storedBytes, segmentFiles: segments.count,
            damage: damage)
    }

    /// The wall-clock time stored in an entry's record.
    private func appendedAt(_ entry: Entry) throws -> Date? {
        guard let path = segments[entry.segment]?.path else { return nil }
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: path, errno: errno) }
        defer { close(descriptor) }
        var milliseconds: Int64 = 0
        let count = withUnsafeMutableBytes(of: &milliseconds) {
            pread(descriptor, $0.baseAddress!, 8, off_t(Int(entry.offset) + SegmentRecord.headerSize))
        }
        guard count == 8 else { return nil }
        return Date(timeIntervalSince1970: Double(Int64(littleEndian: milliseconds)) / 1000)
    }
}
