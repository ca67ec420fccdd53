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
    /// Index: a 48-byte header (`RSPROFI1`, the log's generation, capacity, count, the log offset indexed so
    /// far), then `capacity` slots of (FNV-1a hash of the key, offset of the key's newest entry in the log).
    struct Storage {
        static let logMagic = Array("RSPROFL1".utf8)
        static let indexMagic = Array("RSPROFI1".utf8)
        static let recordMagic: UInt32 = 0x3152_5052  // "RPR1"
        static let logHeaderBytes = 16
        static let indexHeaderBytes = 48
        static let initialCapacity = 1 << 14

        let path: String
        let synchronizes: Bool
        var log: Int32
        var index: Index
        var generation: UInt64
        var logEnd: Int
        var truncatedBytes = 0
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
                if synchronizes { try sync(log, path) }
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
            let indexPath = path + ".index"
            let descriptor = open(indexPath, O_RDWR | O_CLOEXEC)
            var covered = Self.logHeaderBytes
            if descriptor >= 0 {
                let header = (try? read(descriptor, at: 0, count: Self.indexHeaderBytes, indexPath)) ?? []
                if header.count == Self.indexHeaderBytes, Array(header[0..<8]) == Self.indexMagic,
                    Self.u64(header, at: 8) == generation
                {
                    let capacity = Int(Self.u64(header, at: 16))
                    let offset = Int(Self.u64(header, at: 40))
                    if capacity > 0, capacity & (capacity - 1) == 0, offset >= Self.logHeaderBytes, offset <= logEnd {
                        index = Index(descriptor: descriptor, capacity: capacity, count: Int(Self.u64(header, at: 24)))
                        liveBytes = Int(Self.u64(header, at: 32))
                        covered = offset
                    }
                }
                if index.descriptor < 0 { _ = Glue.close(descriptor) }
            }
            if index.descriptor < 0 {
                // No index, or one of another log: build it afresh from the whole log.
                index = try makeIndex(at: indexPath, capacity: Self.initialCapacity)
                covered = Self.logHeaderBytes
            }
            try replay(from: covered)
        }

        /// An empty index file, written under a temporary name and renamed into place.
        private func makeIndex(at indexPath: String, capacity: Int) throws(FileProfileStoreError) -> Index {
            let temporary = indexPath + ".tmp"
            let descriptor = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw Self.failure(temporary, "cannot create the index") }
            var header = Self.indexMagic
            for value in [generation, UInt64(capacity), 0, 0, UInt64(Self.logHeaderBytes)] {
                withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) }
            }
            do throws(FileProfileStoreError) {
                guard ftruncate(descriptor, off_t(Self.indexHeaderBytes + capacity * 16)) == 0 else {
                    throw Self.failure(temporary, "cannot size the index")
                }
                try write(header, to: descriptor, at: 0, temporary)
                guard rename(temporary, indexPath) == 0 else {
                    throw Self.failure(indexPath, "cannot rename the index")
                }
            } catch {
                _ = Glue.close(descriptor)
                throw error
            }
            return Index(descriptor: descriptor, capacity: capacity, count: 0)
        }

        /// Indexes the records from `offset` to the end of the log; a torn or corrupt tail is cut off.
        private mutating func replay(from offset: Int) throws(FileProfileStoreError) {
            var position = offset
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
            }
            try writeIndexHeader(covered: logEnd)
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
            try append(entries, replacing: replaced)
            if logEnd > Self.compactionFloor, logEnd > Self.compactionRatio * liveBytes { try compact() }
            return profile
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
            for (entry, offset) in zip(entries, offsets) {
                let hash = Format.hash(entry.key)
                if let slot = entry.slot {
                    try writeSlot(slot, hash: hash, offset: UInt64(offset))
                } else {
                    try placeSlot(hash: hash, offset: UInt64(offset))
                    index.count += 1
                }
            }
            try writeIndexHeader(covered: logEnd)
            if index.count * 2 > index.capacity { try grow() }
        }

        // MARK: Reading

        mutating func readUser(_ key: ProfileKey) throws(FileProfileStoreError) -> UserProfile? {
            try checkOpen()
            guard let payload = try lookup(Array(key.storageKey.utf8)).payload else { return nil }
            return try decode(payload) { bytes throws(Format.Reader.Malformed) in try Format.decodeUser(bytes) }
        }

        mutating func readAccount(_ id: String) throws(FileProfileStoreError) -> AccountProfile? {
            try checkOpen()
            guard let payload = try lookup(Array(ProfileKey.account(id).storageKey.utf8)).payload else { return nil }
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
            while true {
                let (slotHash, offset) = try readSlot(slot)
                if slotHash == 0 { return (nil, nil) }
                if slotHash == hash, let payload = try entry(at: offset, key: key) { return (slot, payload) }
                slot = (slot + 1) & (index.capacity - 1)
            }
        }

        /// The payload of the entry at `offset` when its key is `key`.
        private func entry(at offset: Int, key: [UInt8]) throws(FileProfileStoreError) -> [UInt8]? {
            guard offset + 8 <= logEnd else {
                throw FileProfileStoreError(.corrupt, path: path + ".index", "the index points past the end of the log")
            }
            // One read usually covers the whole entry; a longer one takes a second.
            var bytes = try read(log, at: offset, count: min(4096, logEnd - offset), path)
            let keyLength = Int(Self.u32(bytes, at: 0))
            let payloadLength = Int(Self.u32(bytes, at: 4))
            guard keyLength == key.count else { return nil }
            let total = 8 + keyLength + payloadLength
            guard offset + total <= logEnd else {
                throw FileProfileStoreError(.corrupt, path: path, "an entry runs past the end of the log")
            }
            if bytes.count < total { bytes = try read(log, at: offset, count: total, path) }
            guard bytes[8..<8 + keyLength].elementsEqual(key) else { return nil }
            return Array(bytes[(8 + keyLength)..<total])
        }

        // MARK: The index

        private func readSlot(_ slot: Int) throws(FileProfileStoreError) -> (hash: UInt64, offset: Int) {
            let bytes = try read(index.descriptor, at: Self.indexHeaderBytes + slot * 16, count: 16, path + ".index")
            guard bytes.count == 16 else {
                throw FileProfileStoreError(.corrupt, path: path + ".index", "the index is shorter than its capacity")
            }
            return (Self.u64(bytes, at: 0), Int(Self.u64(bytes, at: 8)))
        }

        /// Points the slot of `hash`'s key at `offset`: the slot that holds an entry with the same key, or the
        /// first empty one.
        private mutating func setSlot(hash: UInt64, offset: Int) throws(FileProfileStoreError) {
            let key = try keyOfEntry(at: offset)
            var slot = Int(truncatingIfNeeded: hash) & (index.capacity - 1)
            while true {
                let (slotHash, slotOffset) = try readSlot(slot)
                if slotHash == 0 {
                    index.count += 1
                    break
                }
                if slotHash == hash, try keyOfEntry(at: slotOffset) == key { break }
                slot = (slot + 1) & (index.capacity - 1)
            }
            try writeSlot(slot, hash: hash, offset: UInt64(offset))
        }

        private func writeSlot(_ slot: Int, hash: UInt64, offset: UInt64) throws(FileProfileStoreError) {
            var bytes: [UInt8] = []
            Self.append(hash, to: &bytes)
            Self.append(offset, to: &bytes)
            try write(bytes, to: index.descriptor, at: Self.indexHeaderBytes + slot * 16, path + ".index")
        }

        private func keyOfEntry(at offset: Int) throws(FileProfileStoreError) -> [UInt8] {
            let head = try read(log, at: offset, count: min(512, logEnd - offset), path)
            guard head.count >= 8 else { throw FileProfileStoreError(.corrupt, path: path, "an entry is cut short") }
            let keyLength = Int(Self.u32(head, at: 0))
            if head.count >= 8 + keyLength { return Array(head[8..<8 + keyLength]) }
            let full = try read(log, at: offset + 8, count: keyLength, path)
            guard full.count == keyLength else {
                throw FileProfileStoreError(.corrupt, path: path, "an entry is cut short")
            }
            return full
        }

        private func writeIndexHeader(covered: Int) throws(FileProfileStoreError) {
            var bytes: [UInt8] = []
            Self.append(UInt64(index.count), to: &bytes)
            Self.append(UInt64(max(0, liveBytes)), to: &bytes)
            Self.append(UInt64(covered), to: &bytes)
            try write(bytes, to: index.descriptor, at: 24, path + ".index")
        }

        /// Doubles the index: a new file with every slot moved, renamed over the old one.
        private mutating func grow() throws(FileProfileStoreError) {
            let old = index
            index = try makeIndex(at: path + ".index.grow", capacity: old.capacity * 2)
            var moved = 0
            let chunk = 4096
            var start = 0
            while start < old.capacity {
                let count = min(chunk, old.capacity - start)
                let bytes = try read(old.descriptor, at: Self.indexHeaderBytes + start * 16, count: count * 16, path)
                for position in 0..<count where position * 16 + 16 <= bytes.count {
                    let hash = Self.u64(bytes, at: position * 16)
                    guard hash != 0 else { continue }
                    try placeSlot(hash: hash, offset: Self.u64(bytes, at: position * 16 + 8))
                    moved += 1
                }
                start += count
            }
            index.count = moved
            try writeIndexHeader(covered: logEnd)
            guard rename(path + ".index.grow", path + ".index") == 0 else {
                throw Self.failure(path + ".index", "cannot rename the grown index")
            }
            _ = Glue.close(old.descriptor)
        }

        /// Puts a slot into the first empty place of its probe sequence (keys are known to be distinct).
        private func placeSlot(hash: UInt64, offset: UInt64) throws(FileProfileStoreError) {
            var slot = Int(truncatingIfNeeded: hash) & (index.capacity - 1)
            while try readSlot(slot).hash != 0 { slot = (slot + 1) & (index.capacity - 1) }
            try writeSlot(slot, hash: hash, offset: offset)
        }

        // MARK: Compaction and closing

        /// Writes the newest entry of every key into a new log, then renames it over the old one; the index
        /// is rebuilt from it.
        mutating func compact() throws(FileProfileStoreError) {
            try checkOpen()
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
                    guard let payload = try entry(at: offset, key: key) else { continue }
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
            } catch {
                _ = Glue.close(descriptor)
                unlink(temporary)
                throw error
            }
            _ = Glue.close(log)
            _ = Glue.close(index.descriptor)
            log = descriptor
            index.descriptor = -1
            generation = newGeneration
            logEnd = try fileSize(log, path)
            var capacity = Self.initialCapacity
            while capacity < records * 3 { capacity *= 2 }  // room for the records, so it does not grow at once
            index = try makeIndex(at: path + ".index", capacity: capacity)
            liveBytes = 0
            try replay(from: Self.logHeaderBytes)
        }

        mutating func close() {
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
