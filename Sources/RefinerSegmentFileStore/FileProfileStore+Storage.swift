import Foundation
import RefinerSegment

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension FileProfileStore {
    /// The log and its index, behind the store's lock.
    ///
    /// Log: a 16-byte header (`RSPROFL1`, a generation number), then records: magic `RPR1`, body length,
    /// CRC-32 of the body, body = entry count, then per entry: key length, payload length, key, payload.
    /// Index: a 64-byte header (`RSPROFI2`, the log's generation, capacity, count, live bytes, the log offset
    /// indexed so far, then a CRC-32 of those 48 bytes), then `capacity` slots of (FNV-1a hash of the key, offset
    /// of the key's newest entry in the log). The index is a cache of the log: every value read from it is
    /// checked, and an index found damaged is rebuilt from the log (`indexRebuilds`), never trusted or trapped on.
    /// An index of another layout (`RSPROFI1`, before the checksum) is rebuilt too, as a missing one is.
    ///
    /// Checkpoints: an apply writes its slots but not the header. Every `checkpointBytes` of log, and on close,
    /// the index is flushed (`fsync`, with `synchronizes`) and only then does its header's covered offset move to
    /// the log's end. So whatever a power cut keeps of the index's pages, the slots the header vouches for are
    /// on the disk; the slots written since may be there or not, and the open replays the log from the covered
    /// offset (idempotent: each entry points its key's slot at itself, in log order), then counts the slots.
    struct Storage {
        static let logMagic = Array("RSPROFL1".utf8)
        static let indexMagic = Array("RSPROFI2".utf8)
        static let recordMagic: UInt32 = 0x3152_5052  // "RPR1"
        static let logHeaderBytes = 16
        static let indexHeaderBytes = 64
        /// The smallest offset an entry can have: after the log's header, a record's 12-byte head and its count.
        static let firstEntryOffset = logHeaderBytes + 12 + 1
        static let initialCapacity = 1 << 14
        /// How much log is written between checkpoints of the index: what an open after a crash replays at most.
        static let checkpointBytes = 4 << 20

        let path: String
        let indexPath: String
        let synchronizes: Bool
        var log: Int32
        var index: Index
        var generation: UInt64
        var logEnd: Int
        var truncatedBytes = 0
        /// How many times the index was found damaged and rebuilt from the log since the store was opened.
        var indexRebuilds = 0
        /// The covered offset the index's header holds: the last checkpoint.
        var checkpointed = logHeaderBytes
        /// Whether the index points every key at its newest entry up to the log's end, so that a checkpoint may
        /// say so. False while the index is being built, and for good after an apply failed between the log's
        /// write and the index's: a reopen then replays from the last checkpoint.
        var indexIsSound = false
        /// About how many bytes of the log are newest entries (the rest is superseded): what decides when the
        /// log is compacted.
        var liveBytes = 0
        /// The log is compacted when it is larger than this many times its live bytes (and over 64 MiB).
        static let compactionRatio = 4
        static let compactionFloor = 64 << 20

        struct Index {
            var descriptor: Int32
            var capacity: Int
            var count: Int
        }

        init(path: String, synchronizes: Bool) throws(FileProfileStoreError) {
            self.path = path
            self.indexPath = path + ".index"
            self.synchronizes = synchronizes
            let log = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard log >= 0 else { throw Self.failure(path, "cannot open the file") }
            guard flock(log, LOCK_EX | LOCK_NB) == 0 else {
                let number = errno
                _ = Glue.close(log)
                throw FileProfileStoreError(
                    .locked, path: path, "another profile store (in this or another process) has the file open",
                    errorNumber: number)
            }
            self.log = log
            self.index = Index(descriptor: -1, capacity: 0, count: 0)
            self.generation = 0
            self.logEnd = 0
            do throws(FileProfileStoreError) {
                try openLog()
                try openIndex()
            } catch {
                close()
                throw error
            }
        }

        // MARK: Opening

        private mutating func openLog() throws(FileProfileStoreError) {
            let size = try fileSize(log, path)
            if size == 0 {
                generation = UInt64.random(in: 1...UInt64.max)
                var header = Self.logMagic
                withUnsafeBytes(of: generation.littleEndian) { header.append(contentsOf: $0) }
                try write(header, to: log, at: 0, path)
                if synchronizes {
                    try sync(log, path)
                    try syncDirectory()  // the new file's name, too
                }
                logEnd = Self.logHeaderBytes
                return
            }
            let header = try read(log, at: 0, count: Self.logHeaderBytes, path)
            guard header.count == Self.logHeaderBytes, Array(header[0..<8]) == Self.logMagic else {
                throw FileProfileStoreError(.corrupt, path: path, "the file is not a profile store")
            }
            generation = Self.u64(header, at: 8)
            logEnd = size
        }

        private mutating func openIndex() throws(FileProfileStoreError) {
            let descriptor = open(indexPath, O_RDWR | O_CLOEXEC)
            if descriptor >= 0 {
                switch checkIndexHeader(descriptor) {
                case .usable(let header):
                    index = Index(descriptor: descriptor, capacity: header.capacity, count: header.count)
                    liveBytes = header.liveBytes
                    checkpointed = header.covered
                    do throws(FileProfileStoreError) {
                        if try canReplay(from: header.covered) {
                            // Slots written after the checkpoint may be on the disk or not, so the header's count
                            // says nothing of the keys first seen since: count the slots once replayed.
                            if try replay(from: header.covered) > 0 { index.count = try countSlots() }
                            indexIsSound = true
                            try checkpoint()
                            return
                        }
                        // Neither a record nor a torn one where the index says it stopped: the index is wrong, or
                        // a power cut left zeros there. Only the whole log tells them apart (and no good record is
                        // cut off for a wrong index's sake).
                        do throws(FileProfileStoreError) { try rebuildIndex() } catch { throw Self.asCorrupt(error) }
                        if logEnd != header.covered { indexRebuilds += 1 }
                        return
                    } catch {
                        guard error.code == .damagedIndex else { throw error }
                        indexRebuilds += 1
                    }
                case .damaged:
                    _ = Glue.close(descriptor)
                    indexRebuilds += 1
                case .foreign:
                    // One of another log (a compaction replaced the log, then the process died) or of an older
                    // layout: not damage, only stale.
                    _ = Glue.close(descriptor)
                }
            }
            do throws(FileProfileStoreError) { try rebuildIndex() } catch { throw Self.asCorrupt(error) }
        }

        /// What the index file's header is worth.
        enum IndexHeaderCheck {
            /// Its values, each checked against the files.
            case usable(IndexHeader)
            /// Not an index of this log in this layout (none, or another log's, or an older layout's).
            case foreign
            /// An index of this layout whose header is damaged or makes no sense.
            case damaged
        }

        struct IndexHeader {
            var capacity: Int
            var count: Int
            var liveBytes: Int
            var covered: Int
        }

        /// Reads and checks the index's header: its checksum, then every value against the files' sizes, so that
        /// nothing read from it can trap or send a read outside the files.
        private func checkIndexHeader(_ descriptor: Int32) -> IndexHeaderCheck {
            guard let header = try? read(descriptor, at: 0, count: Self.indexHeaderBytes, indexPath),
                header.count >= 8, Array(header[0..<8]) == Self.indexMagic
            else { return .foreign }
            guard header.count == Self.indexHeaderBytes,
                Format.checksum(Array(header[0..<48])) == Self.u32(header, at: 48)
            else { return .damaged }
            guard Self.u64(header, at: 8) == generation else { return .foreign }
            guard let capacity = Int(exactly: Self.u64(header, at: 16)),
                let count = Int(exactly: Self.u64(header, at: 24)),
                let liveBytes = Int(exactly: Self.u64(header, at: 32)),
                let covered = Int(exactly: Self.u64(header, at: 40)),
                capacity > 0, capacity & (capacity - 1) == 0, capacity <= (Int.max - Self.indexHeaderBytes) / 16,
                (try? fileSize(descriptor, indexPath)) == Self.indexHeaderBytes + capacity * 16,
                count < capacity, covered >= Self.logHeaderBytes, covered <= logEnd, liveBytes <= covered
            else { return .damaged }
            return .usable(IndexHeader(capacity: capacity, count: count, liveBytes: liveBytes, covered: covered))
        }

        /// Whether a replay may start at `offset`: the log's end or its first record, a whole record, or one cut
        /// short by the end of the log (what a process killed mid-write leaves; the replay cuts it off).
        private func canReplay(from offset: Int) throws(FileProfileStoreError) -> Bool {
            if offset == logEnd || offset == Self.logHeaderBytes { return true }
            guard logEnd - offset >= 12 else { return true }
            let head = try read(log, at: offset, count: 12, path)
            guard Self.u32(head, at: 0) == Self.recordMagic else { return false }
            if Int(Self.u32(head, at: 4)) > logEnd - offset - 12 { return true }
            return try readRecord(at: offset) != nil
        }

        /// A new index built from the whole log, in place of whatever index there was.
        private mutating func rebuildIndex() throws(FileProfileStoreError) {
            indexIsSound = false
            if index.descriptor >= 0 { _ = Glue.close(index.descriptor) }
            index = Index(descriptor: -1, capacity: 0, count: 0)
            index = try makeIndex(capacity: Self.initialCapacity)
            liveBytes = 0
            _ = try replay(from: Self.logHeaderBytes)
            indexIsSound = true
            try checkpoint()
        }

        /// Flushes the index's slots (with `synchronizes`), then records in its header that they cover the log up
        /// to its end: in that order, so a power cut never keeps a header that vouches for slots it lost.
        private mutating func checkpoint() throws(FileProfileStoreError) {
            guard indexIsSound else { return }
            if synchronizes { try sync(index.descriptor, indexPath) }
            try writeIndexHeader(covered: logEnd)
            checkpointed = logEnd
        }

        /// The number of keys in the index, each slot's offset checked.
        private func countSlots() throws(FileProfileStoreError) -> Int {
            var count = 0
            var start = 0
            while start < index.capacity {
                let slots = min(4096, index.capacity - start)
                let bytes = try read(
                    index.descriptor, at: Self.indexHeaderBytes + start * 16, count: slots * 16, indexPath)
                guard bytes.count == slots * 16 else { throw damage("the index is shorter than its capacity") }
                for position in 0..<slots where Self.u64(bytes, at: position * 16) != 0 {
                    _ = try checkedOffset(Self.u64(bytes, at: position * 16 + 8))
                    count += 1
                }
                start += slots
            }
            return count
        }

        /// Runs `body` (which only reads); when it finds the index damaged, rebuilds the index from the log and
        /// runs it once more. Damage found again is reported as a corrupt store.
        private mutating func repairingIndex<Result>(
            _ body: (Self) throws(FileProfileStoreError) -> Result
        ) throws(FileProfileStoreError) -> Result {
            do throws(FileProfileStoreError) {
                return try body(self)
            } catch {
                guard error.code == .damagedIndex else { throw error }
                try rebuildAfterDamage()
            }
            do throws(FileProfileStoreError) {
                return try body(self)
            } catch {
                throw Self.asCorrupt(error)
            }
        }

        private mutating func rebuildAfterDamage() throws(FileProfileStoreError) {
            indexRebuilds += 1
            do throws(FileProfileStoreError) {
                try rebuildIndex()
            } catch {
                throw Self.asCorrupt(error)
            }
        }

        /// A damaged index that rebuilding did not cure: the log itself makes no sense.
        private static func asCorrupt(_ error: FileProfileStoreError) -> FileProfileStoreError {
            guard error.code == .damagedIndex else { return error }
            return FileProfileStoreError(
                .corrupt, path: error.path, error.detail + ", and rebuilding the index did not help")
        }

        private func damage(_ detail: String) -> FileProfileStoreError {
            FileProfileStoreError(.damagedIndex, path: indexPath, detail)
        }

        /// An empty index, written under a temporary name and renamed into place; its header covers nothing yet.
        /// Not flushed: whatever of it a power cut keeps, the open rebuilds or replays from the log's start.
        private mutating func makeIndex(capacity: Int) throws(FileProfileStoreError) -> Index {
            let temporary = indexPath + ".tmp"
            let descriptor = try makeIndexFile(at: temporary, capacity: capacity)
            do throws(FileProfileStoreError) {
                try publishIndex(descriptor, from: temporary, flushing: false)
            } catch {
                _ = Glue.close(descriptor)
                throw error
            }
            checkpointed = Self.logHeaderBytes
            return Index(descriptor: descriptor, capacity: capacity, count: 0)
        }

        /// A file of `capacity` empty slots at `temporary`, its header covering nothing.
        private func makeIndexFile(at temporary: String, capacity: Int) throws(FileProfileStoreError) -> Int32 {
            let descriptor = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw Self.failure(temporary, "cannot create the index") }
            let header = indexHeader(capacity: capacity, count: 0, liveBytes: 0, covered: Self.logHeaderBytes)
            do throws(FileProfileStoreError) {
                guard ftruncate(descriptor, off_t(Self.indexHeaderBytes + capacity * 16)) == 0 else {
                    throw Self.failure(temporary, "cannot size the index")
                }
                try write(header, to: descriptor, at: 0, temporary)
            } catch {
                _ = Glue.close(descriptor)
                throw error
            }
            return descriptor
        }

        /// Renames the index file at `temporary` over the index. With `synchronizes`, its contents are flushed
        /// first when `flushing` (so the name never reaches the disk before them), and the directory after.
        private func publishIndex(_ descriptor: Int32, from temporary: String, flushing: Bool)
            throws(FileProfileStoreError)
        {
            if synchronizes, flushing { try sync(descriptor, temporary) }
            guard rename(temporary, indexPath) == 0 else { throw Self.failure(indexPath, "cannot rename the index") }
            if synchronizes { try syncDirectory() }
        }

        /// Indexes the records from `offset` to the end of the log; a torn or corrupt tail is cut off. Returns
        /// how many records it indexed.
        private mutating func replay(from offset: Int) throws(FileProfileStoreError) -> Int {
            var position = offset
            var records = 0
            while position < logEnd {
                guard let (length, entries) = try readRecord(at: position) else {
                    truncatedBytes = logEnd - position
                    guard ftruncate(log, off_t(position)) == 0 else {
                        throw Self.failure(path, "cannot cut the torn tail")
                    }
                    logEnd = position
                    break
                }
                for entry in entries {
                    try setSlot(hash: entry.hash, offset: entry.offset)
                    if index.count * 2 > index.capacity { try grow() }
                }
                liveBytes += length  // an over-estimate: what these entries replace is not subtracted
                position += length
                records += 1
            }
            return records
        }

        /// The record at `offset`: its length and its entries' hashes and offsets; `nil` when it is torn
        /// or its checksum is wrong.
        private func readRecord(at offset: Int) throws(FileProfileStoreError) -> (Int, [(hash: UInt64, offset: Int)])? {
            guard logEnd - offset >= 12 else { return nil }
            let head = try read(log, at: offset, count: 12, path)
            guard Self.u32(head, at: 0) == Self.recordMagic else { return nil }
            let bodyLength = Int(Self.u32(head, at: 4))
            guard bodyLength >= 1, bodyLength <= logEnd - offset - 12 else { return nil }
            let body = try read(log, at: offset + 12, count: bodyLength, path)
            guard body.count == bodyLength, Format.checksum(body) == Self.u32(head, at: 8) else { return nil }
            var entries: [(hash: UInt64, offset: Int)] = []
            var cursor = 1
            for _ in 0..<Int(body[0]) {
                guard bodyLength - cursor >= 8 else { return nil }
                let keyLength = Int(Self.u32(body, at: cursor))
                let payloadLength = Int(Self.u32(body, at: cursor + 4))
                guard keyLength <= bodyLength - cursor - 8, payloadLength <= bodyLength - cursor - 8 - keyLength else {
                    return nil
                }
                let key = Array(body[cursor + 8..<cursor + 8 + keyLength])
                entries.append((Format.hash(key), offset + 12 + cursor))
                cursor += 8 + keyLength + payloadLength
            }
            return (12 + bodyLength, entries)
        }

        // MARK: Applying

        mutating func apply(_ changes: ProfileChanges) throws(FileProfileStoreError) -> CollectedProfile {
            try checkOpen()
            let (profile, entries, replaced) = try repairingIndex { storage throws(FileProfileStoreError) in
                try storage.prepare(changes)
            }
            try append(entries, replacing: replaced)
            if logEnd > Self.compactionFloor, logEnd > Self.compactionRatio * liveBytes { try compact() }
            return profile
        }

        /// The merged profiles of an apply and the entries that record them (only reads).
        private func prepare(
            _ changes: ProfileChanges
        ) throws(FileProfileStoreError) -> (CollectedProfile, [Pending], replaced: Int) {
            let userKey = Array(changes.user.storageKey.utf8)
            var profile = CollectedProfile()
            let user = try lookup(userKey)
            if let payload = user.payload {
                profile.user = try decode(payload) { bytes throws(Format.Reader.Malformed) in
                    try Format.decodeUser(bytes)
                }
            }
            profile.user.apply(changes)
            var replaced = user.payload.map { 8 + userKey.count + $0.count } ?? 0
            var entries: [Pending] = [Pending(key: userKey, payload: Format.encode(profile.user), slot: user.found)]
            if let account = changes.account {
                let accountKey = Array(account.storageKey.utf8)
                let stored = try lookup(accountKey)
                if let payload = stored.payload {
                    profile.account = try decode(payload) { bytes throws(Format.Reader.Malformed) in
                        try Format.decodeAccount(bytes)
                    }
                }
                profile.account.apply(changes)
                replaced += stored.payload.map { 8 + accountKey.count + $0.count } ?? 0
                entries.append(Pending(key: accountKey, payload: Format.encode(profile.account), slot: stored.found))
            }
            return (profile, entries, replaced)
        }

        /// An entry about to be written, and the index slot that already holds its key, if any.
        struct Pending {
            var key: [UInt8]
            var payload: [UInt8]
            var slot: Int?
        }

        /// Appends one record holding `entries` (one write), then points the index at them.
        private mutating func append(_ entries: [Pending], replacing replaced: Int) throws(FileProfileStoreError) {
            var body: [UInt8] = [UInt8(entries.count)]
            var offsets: [Int] = []
            for entry in entries {
                offsets.append(logEnd + 12 + body.count)
                Self.append(UInt32(entry.key.count), to: &body)
                Self.append(UInt32(entry.payload.count), to: &body)
                body += entry.key
                body += entry.payload
            }
            var record: [UInt8] = []
            record.reserveCapacity(12 + body.count)
            Self.append(Self.recordMagic, to: &record)
            Self.append(UInt32(body.count), to: &record)
            Self.append(Format.checksum(body), to: &record)
            record += body
            try write(record, to: log, at: logEnd, path)
            if synchronizes { try sync(log, path) }
            logEnd += record.count
            liveBytes += record.count - replaced
            do throws(FileProfileStoreError) {
                for (entry, offset) in zip(entries, offsets) {
                    let hash = Format.hash(entry.key)
                    if let slot = entry.slot {
                        try writeSlot(slot, hash: hash, offset: UInt64(offset))
                    } else {
                        try placeSlot(hash: hash, offset: UInt64(offset))
                        index.count += 1
                    }
                }
                if index.count * 2 > index.capacity { try grow() }
            } catch {
                guard error.code == .damagedIndex else {
                    indexIsSound = false  // the record is in the log, its slots perhaps not: no checkpoint now
                    throw error
                }
                try rebuildAfterDamage()  // from the whole log, this record included
            }
            if logEnd - checkpointed >= Self.checkpointBytes { try checkpoint() }
        }

        // MARK: Reading

        mutating func readUser(_ key: ProfileKey) throws(FileProfileStoreError) -> UserProfile? {
            try checkOpen()
            let key = Array(key.storageKey.utf8)
            let found = try repairingIndex { storage throws(FileProfileStoreError) in try storage.lookup(key) }
            guard let payload = found.payload else { return nil }
            return try decode(payload) { bytes throws(Format.Reader.Malformed) in try Format.decodeUser(bytes) }
        }

        mutating func readAccount(_ id: String) throws(FileProfileStoreError) -> AccountProfile? {
            try checkOpen()
            let key = Array(ProfileKey.account(id).storageKey.utf8)
            let found = try repairingIndex { storage throws(FileProfileStoreError) in try storage.lookup(key) }
            guard let payload = found.payload else { return nil }
            return try decode(payload) { bytes throws(Format.Reader.Malformed) in
                try Format.decodeAccount(bytes)
            }
        }

        private func decode<Value>(
            _ payload: [UInt8],
            _ body: ([UInt8]) throws(Format.Reader.Malformed) -> Value
        ) throws(FileProfileStoreError) -> Value {
            do {
                return try body(payload)
            } catch {
                throw FileProfileStoreError(.corrupt, path: path, "a stored profile cannot be read")
            }
        }

        /// The newest entry of `key`: the slot that points at it and its payload; `nil`s when the key has none.
        private func lookup(_ key: [UInt8]) throws(FileProfileStoreError) -> (found: Int?, payload: [UInt8]?) {
            let hash = Format.hash(key)
            var slot = Int(truncatingIfNeeded: hash) & (index.capacity - 1)
            for _ in 0..<index.capacity {
                let (slotHash, offset) = try readSlot(slot)
                if slotHash == 0 { return (nil, nil) }
                if slotHash == hash, let payload = try entry(at: offset, key: key, hash: hash) {
                    return (slot, payload)
                }
                slot = (slot + 1) & (index.capacity - 1)
            }
            throw damage("the index has no empty slot")
        }

        /// The payload of the entry at `offset` (a checked slot's) when its key is `key`; `nil` when it is another
        /// key of the same hash (a collision). Anything else means the slot is damaged.
        private func entry(at offset: Int, key: [UInt8], hash: UInt64) throws(FileProfileStoreError) -> [UInt8]? {
            // One read usually covers the whole entry; a longer one takes a second.
            var bytes = try read(log, at: offset, count: min(4096, logEnd - offset), path)
            guard bytes.count >= 8 else { throw damage("an index slot points past the end of the log") }
            let keyLength = Int(Self.u32(bytes, at: 0))
            let keyEnd = 8 + keyLength
            let total = keyEnd + Int(Self.u32(bytes, at: 4))
            guard total <= logEnd - offset else { throw damage("an index slot points at no entry of the log") }
            if keyLength == key.count {
                if bytes.count < total { bytes = try read(log, at: offset, count: total, path) }
                guard bytes.count >= total else { throw damage("an index slot points past the end of the log") }
                if bytes[8..<keyEnd].elementsEqual(key) { return Array(bytes[keyEnd..<total]) }
            } else if bytes.count < keyEnd {
                bytes = try read(log, at: offset, count: keyEnd, path)
                guard bytes.count >= keyEnd else { throw damage("an index slot points past the end of the log") }
            }
            // Another key: fine if its hash is the slot's (two keys of one hash), not if the slot points elsewhere.
            guard Format.hash(Array(bytes[8..<keyEnd])) == hash else {
                throw damage("an index slot points at an entry of another key")
            }
            return nil
        }

        // MARK: The index

        /// A slot's hash and offset (0 and 0 when empty); an offset that cannot be an entry's is damage.
        private func readSlot(_ slot: Int) throws(FileProfileStoreError) -> (hash: UInt64, offset: Int) {
            let bytes = try read(index.descriptor, at: Self.indexHeaderBytes + slot * 16, count: 16, indexPath)
            guard bytes.count == 16 else { throw damage("the index is shorter than its capacity") }
            let hash = Self.u64(bytes, at: 0)
            if hash == 0 { return (0, 0) }
            return (hash, try checkedOffset(Self.u64(bytes, at: 8)))
        }

        /// `offset` read from a slot, when an entry can start there.
        private func checkedOffset(_ offset: UInt64) throws(FileProfileStoreError) -> Int {
            guard let offset = Int(exactly: offset), offset >= Self.firstEntryOffset, offset <= logEnd - 8 else {
                throw damage("an index slot points outside the log")
            }
            return offset
        }

        /// Points the slot of `hash`'s key at `offset`: the slot that holds an entry with the same key, or the
        /// first empty one.
        private mutating func setSlot(hash: UInt64, offset: Int) throws(FileProfileStoreError) {
            let key = try keyOfEntry(at: offset)
            var slot = Int(truncatingIfNeeded: hash) & (index.capacity - 1)
            var probes = 0
            while true {
                let (slotHash, slotOffset) = try readSlot(slot)
                if slotHash == 0 {
                    index.count += 1
                    break
                }
                if slotHash == hash {
                    let slotKey = try keyOfEntry(at: slotOffset)
                    if slotKey == key { break }
                    guard Format.hash(slotKey) == hash else {
                        throw damage("an index slot points at an entry of another key")
                    }
                }
                probes += 1
                guard probes < index.capacity else { throw damage("the index has no empty slot") }
                slot = (slot + 1) & (index.capacity - 1)
            }
            try writeSlot(slot, hash: hash, offset: UInt64(offset))
        }

        private func writeSlot(_ slot: Int, hash: UInt64, offset: UInt64) throws(FileProfileStoreError) {
            var bytes: [UInt8] = []
            Self.append(hash, to: &bytes)
            Self.append(offset, to: &bytes)
            try write(bytes, to: index.descriptor, at: Self.indexHeaderBytes + slot * 16, indexPath)
        }

        /// The key of the entry at `offset` (a checked slot's, or one of a record just read).
        private func keyOfEntry(at offset: Int) throws(FileProfileStoreError) -> [UInt8] {
            guard offset <= logEnd - 8 else { throw damage("an index slot points past the end of the log") }
            let head = try read(log, at: offset, count: min(512, logEnd - offset), path)
            guard head.count >= 8 else { throw damage("an index slot points at an entry cut short") }
            let keyLength = Int(Self.u32(head, at: 0))
            guard keyLength <= logEnd - offset - 8 else { throw damage("an index slot points at no entry of the log") }
            if head.count >= 8 + keyLength { return Array(head[8..<8 + keyLength]) }
            let full = try read(log, at: offset + 8, count: keyLength, path)
            guard full.count == keyLength else { throw damage("an index slot points at an entry cut short") }
            return full
        }

        /// The index's header: its layout, the log's generation, the index's shape, and its checksum.
        private func indexHeader(capacity: Int, count: Int, liveBytes: Int, covered: Int) -> [UInt8] {
            var bytes = Self.indexMagic
            for value in [generation, UInt64(capacity), UInt64(count), UInt64(max(0, liveBytes)), UInt64(covered)] {
                Self.append(value, to: &bytes)
            }
            Self.append(Format.checksum(bytes), to: &bytes)
            bytes += [UInt8](repeating: 0, count: Self.indexHeaderBytes - bytes.count)
            return bytes
        }

        private func writeIndexHeader(covered: Int) throws(FileProfileStoreError) {
            let bytes = indexHeader(
                capacity: index.capacity, count: index.count, liveBytes: liveBytes, covered: covered)
            try write(bytes, to: index.descriptor, at: 0, indexPath)
        }

        /// Doubles the index: a new file with every slot moved, renamed over the old one. Its header covers the
        /// log's end when the index is sound (a checkpoint), else what the old one covered (mid-replay).
        private mutating func grow() throws(FileProfileStoreError) {
            let old = index
            let temporary = indexPath + ".grow"
            let descriptor = try makeIndexFile(at: temporary, capacity: old.capacity * 2)
            index = Index(descriptor: descriptor, capacity: old.capacity * 2, count: 0)
            do throws(FileProfileStoreError) {
                var moved = 0
                let chunk = 4096
                var start = 0
                while start < old.capacity {
                    let count = min(chunk, old.capacity - start)
                    let bytes = try read(
                        old.descriptor, at: Self.indexHeaderBytes + start * 16, count: count * 16, indexPath)
                    guard bytes.count == count * 16 else { throw damage("the index is shorter than its capacity") }
                    for position in 0..<count {
                        let hash = Self.u64(bytes, at: position * 16)
                        guard hash != 0 else { continue }
                        let offset = try checkedOffset(Self.u64(bytes, at: position * 16 + 8))
                        try placeSlot(hash: hash, offset: UInt64(offset))
                        moved += 1
                    }
                    start += count
                }
                index.count = moved
                let covered = indexIsSound ? logEnd : checkpointed
                try writeIndexHeader(covered: covered)
                try publishIndex(descriptor, from: temporary, flushing: true)
                checkpointed = covered
            } catch {
                _ = Glue.close(descriptor)
                unlink(temporary)
                index = old
                throw error
            }
            _ = Glue.close(old.descriptor)
        }

        /// Puts a slot into the first empty place of its probe sequence (keys are known to be distinct).
        private func placeSlot(hash: UInt64, offset: UInt64) throws(FileProfileStoreError) {
            var slot = Int(truncatingIfNeeded: hash) & (index.capacity - 1)
            var probes = 0
            while try readSlot(slot).hash != 0 {
                probes += 1
                guard probes < index.capacity else { throw damage("the index has no empty slot") }
                slot = (slot + 1) & (index.capacity - 1)
            }
            try writeSlot(slot, hash: hash, offset: offset)
        }

        // MARK: Compaction and closing

        /// Writes the newest entry of every key into a new log, then renames it over the old one; the index
        /// is rebuilt from it.
        mutating func compact() throws(FileProfileStoreError) {
            try checkOpen()
            // An apply that failed after writing its record may have left its key's slot behind: the compacted
            // log is made from the index, so the index must be whole first.
            if !indexIsSound { try rebuildIndex() }
            do throws(FileProfileStoreError) {
                try compactOnce()
            } catch {
                guard error.code == .damagedIndex else { throw error }
                // Found before the new log replaced the old one: rebuild the index, then compact with it.
                try rebuildAfterDamage()
                do throws(FileProfileStoreError) { try compactOnce() } catch { throw Self.asCorrupt(error) }
            }
        }

        private mutating func compactOnce() throws(FileProfileStoreError) {
            let temporary = path + ".compact"
            let descriptor = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw Self.failure(temporary, "cannot create the compacted log") }
            let newGeneration = UInt64.random(in: 1...UInt64.max)
            var output = Self.logMagic
            Self.append(newGeneration, to: &output)
            var written = 0
            var records = 0
            do throws(FileProfileStoreError) {
                for slot in 0..<index.capacity {
                    let (hash, offset) = try readSlot(slot)
                    guard hash != 0 else { continue }
                    let key = try keyOfEntry(at: offset)
                    guard Format.hash(key) == hash else {
                        throw damage("an index slot points at an entry of another key")
                    }
                    guard let payload = try entry(at: offset, key: key, hash: hash) else { continue }
                    records += 1
                    var body: [UInt8] = [1]
                    Self.append(UInt32(key.count), to: &body)
                    Self.append(UInt32(payload.count), to: &body)
                    body += key
                    body += payload
                    Self.append(Self.recordMagic, to: &output)
                    Self.append(UInt32(body.count), to: &output)
                    Self.append(Format.checksum(body), to: &output)
                    output += body
                    if output.count >= 1 << 20 {
                        try write(output, to: descriptor, at: written, temporary)
                        written += output.count
                        output.removeAll(keepingCapacity: true)
                    }
                }
                try write(output, to: descriptor, at: written, temporary)
                written += output.count
                try sync(descriptor, temporary)
                guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { throw Self.failure(temporary, "cannot lock") }
                guard rename(temporary, path) == 0 else { throw Self.failure(path, "cannot rename the compacted log") }
                // Applies go to the new log from now on: its name must outlive a power cut as they do.
                if synchronizes { try syncDirectory() }
            } catch {
                _ = Glue.close(descriptor)
                unlink(temporary)
                throw error
            }
            _ = Glue.close(log)
            _ = Glue.close(index.descriptor)
            indexIsSound = false
            log = descriptor
            index.descriptor = -1
            generation = newGeneration
            logEnd = try fileSize(log, path)
            var capacity = Self.initialCapacity
            while capacity < records * 3 { capacity *= 2 }  // room for the records, so it does not grow at once
            index = try makeIndex(capacity: capacity)
            liveBytes = 0
            do throws(FileProfileStoreError) {
                _ = try replay(from: Self.logHeaderBytes)
                indexIsSound = true
                try checkpoint()
            } catch {
                throw Self.asCorrupt(error)
            }
        }

        mutating func close() {
            if log >= 0, index.descriptor >= 0, indexIsSound {
                // A last checkpoint, flushed, so that the next open has nothing to replay. Best effort: without
                // it the open replays from the one before.
                if logEnd != checkpointed { try? checkpoint() }
                if synchronizes { _ = fsync(index.descriptor) }
            }
            if log >= 0 { _ = Glue.close(log) }
            if index.descriptor >= 0 { _ = Glue.close(index.descriptor) }
            log = -1
            index.descriptor = -1
        }

        private func checkOpen() throws(FileProfileStoreError) {
            guard log >= 0, index.descriptor >= 0 else {
                throw FileProfileStoreError(.closed, path: path, "the store is closed")
            }
        }

        // MARK: Bytes and system calls

        static func append(_ value: UInt32, to bytes: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        static func append(_ value: UInt64, to bytes: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        static func u32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
            var value: UInt32 = 0
            for shift in 0..<4 where offset + shift < bytes.count {
                value |= UInt32(bytes[offset + shift]) << (8 * shift)
            }
            return value
        }

        static func u64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for shift in 0..<8 where offset + shift < bytes.count {
                value |= UInt64(bytes[offset + shift]) << (8 * shift)
            }
            return value
        }

        static func failure(_ path: String, _ detail: String) -> FileProfileStoreError {
            FileProfileStoreError(.io, path: path, detail, errorNumber: errno)
        }

        private func fileSize(_ descriptor: Int32, _ path: String) throws(FileProfileStoreError) -> Int {
            let end = lseek(descriptor, 0, SEEK_END)
            guard end >= 0 else { throw Self.failure(path, "cannot find the end of the file") }
            return Int(end)
        }

        /// Up to `count` bytes at `offset` (fewer at the end of the file).
        private func read(_ descriptor: Int32, at offset: Int, count: Int, _ path: String) throws(FileProfileStoreError)
            -> [UInt8]
        {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let result = bytes.withUnsafeMutableBytes { buffer in
                    pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
                }
                if result < 0, errno == EINTR { continue }
                guard result >= 0 else { throw Self.failure(path, "cannot read") }
                if result == 0 { break }
                done += result
            }
            if done < count { bytes.removeLast(count - done) }
            return bytes
        }

        private func write(_ bytes: [UInt8], to descriptor: Int32, at offset: Int, _ path: String)
            throws(FileProfileStoreError)
        {
            var done = 0
            while done < bytes.count {
                let result = bytes.withUnsafeBytes { buffer in
                    pwrite(descriptor, buffer.baseAddress! + done, bytes.count - done, off_t(offset + done))
                }
                if result < 0, errno == EINTR { continue }
                guard result > 0 else { throw Self.failure(path, "cannot write") }
                done += result
            }
        }

        private func sync(_ descriptor: Int32, _ path: String) throws(FileProfileStoreError) {
            guard fsync(descriptor) == 0 else { throw Self.failure(path, "cannot flush to disk") }
        }

        /// Flushes the directory that holds the files: a rename or a new file's name outlives a power cut then.
        private func syncDirectory() throws(FileProfileStoreError) {
            let directory: String
            if let slash = path.lastIndex(of: "/") {
                directory = slash == path.startIndex ? "/" : String(path[..<slash])
            } else {
                directory = "."
            }
            let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard descriptor >= 0 else { throw Self.failure(directory, "cannot open the directory") }
            defer { _ = Glue.close(descriptor) }
            try sync(descriptor, directory)
        }
    }

    /// The C library's `close`, named apart from the store's own ``FileProfileStore/close()``.
    enum Glue {
        static func close(_ descriptor: Int32) -> Int32 {
            #if canImport(Darwin)
            Darwin.close(descriptor)
            #elseif canImport(Glibc)
            Glibc.close(descriptor)
            #else
            Musl.close(descriptor)
            #endif
        }
    }
}
