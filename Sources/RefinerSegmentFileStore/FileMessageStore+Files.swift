import Foundation
import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileMessageStore {
    /// The retry schedules and pauses, written whole by temp file + `fsync` + rename.
    struct Checkpoint: Codable {
        var retryStates: [UInt64: SegmentRetryState] = [:]
        var pauses: [String: Date] = [:]
        /// The latest mark when it was set here, or its segment went (absent in older checkpoints).
        var mark: CheckpointMark?

        /// Drops what no store could have written, and reports each as damage: the file has no checksum, and
        /// a value past its range (a sequence past ``SegmentRecord/maximumSequence``, a negative count) would
        /// overflow where it is used. A schedule dropped means its unit starts afresh; a mark dropped, that
        /// the latest mark in the segments (if any) is the one read back. Counts too large and pauses too
        /// long are brought into range by the pipeline, which knows the policy.
        mutating func dropValuesOutOfRange() -> [SegmentStoreDamage] {
            var damage: [SegmentStoreDamage] = []
            func report(_ what: String) {
                damage.append(
                    SegmentStoreDamage(location: "checkpoint.json (\(what): dropped)", byteCount: 0, isTornTail: false))
            }
            if let kept = mark, kept.sequence > SegmentRecord.maximumSequence {
                report("the mark's sequence \(kept.sequence) is out of range")
                mark = nil
            }
            for (sequence, state) in retryStates
            where sequence > SegmentRecord.maximumSequence || state.failures < 0 || state.retryCount < 0 {
                report(
                    "the retry schedule of sequence \(sequence) is out of range "
                        + "(\(state.failures) failures, retry count \(state.retryCount))")
                retryStates[sequence] = nil
            }
            return damage
        }
    }

    struct CheckpointMark: Codable {
        var sequence: UInt64
        var bytes: Data
    }

    struct Opened {
        var tenants: [TenantQueue] = []
        var tenantNumbers: [String: Int] = [:]
        var segments: [UInt32: Segment] = [:]
        var nextSegment: UInt32 = 0
        var storedBytes = 0
        var nextSequence: UInt64 = 1
        var checkpoint = Checkpoint()
        var damage: [SegmentStoreDamage] = []
        var mark: Mark?
        /// The size of acks.log once rewritten.
        var acksBytes = 0
    }

    /// Reads the directory: acknowledgements first, then every segment, each in one read into one reused
    /// buffer, checking every record's checksum but decoding only its fixed header (messages are read on
    /// claim). Cuts torn tails, deletes settled segments, and rewrites the acknowledgement log with what is
    /// still needed.
    ///
    /// - Parameter sync: `fsync` for the files written whole (``replace(_:with:sync:)``).
    static func open(_ directory: URL, sync: (Int32) -> Int32) throws -> Opened {
        var opened = Opened()
        var damage: [SegmentStoreDamage] = []
        var buffer: [UInt8] = []
        if let data = FileManager.default.contents(atPath: directory.appendingPathComponent("checkpoint.json").path) {
            if let checkpoint = try? JSONDecoder().decode(Checkpoint.self, from: data) {
                opened.checkpoint = checkpoint
                damage += opened.checkpoint.dropValuesOutOfRange()
            } else {
                damage.append(
                    SegmentStoreDamage(
                        location: "checkpoint.json (unreadable: its pauses, retry schedules and mark are lost)",
                        byteCount: data.count, isTornTail: false))
            }
        }
        var foundMark: Mark?
        /// Segments with nothing unsettled, deleted once the latest mark is safe.
        var empty: [(ordinal: UInt32, segment: Segment, settled: [UInt64])] = []
        let acksPath = directory.appendingPathComponent("acks.log").path
        var settled = Set<UInt64>()
        try scanFile(acksPath, buffer: &buffer, damage: &damage) { buffer, _, sequence, payload in
            opened.nextSequence = max(opened.nextSequence, sequence + 1)
            settled.formUnion(UnitCodec.decodeSequences(UnsafeRawBufferPointer(rebasing: buffer[payload])))
        }
        var needed: [UInt64] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let files = names.filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }.sorted().compactMap {
            name -> (name: String, first: UInt64)? in
            UInt64(name.dropFirst("segment-".count).dropLast(".log".count), radix: 16).map { (name, $0) }
        }
        let totalBytes = files.reduce(0) { $0 + fileSize(directory.appendingPathComponent($1.name).path) }
        var scannedBytes = 0
        var scannedEntries = 0
        var reserved = false
        var lastTenant: (bytes: [UInt8], number: Int)?
        // Files are read and checked two at a time, one on each of two threads (the checksums are most of
        // the work), then indexed in order.
        let slots = ScanSlots(count: 2)
        var batchStart = 0
        while batchStart < files.count {
            let batch = Array(files[batchStart..<min(batchStart + slots.count, files.count)])
            batchStart += batch.count
            DispatchQueue.concurrentPerform(iterations: batch.count) { slot in
                var buffer = slots.takeBuffer(slot)
                let scan = readAndScan(directory.appendingPathComponent(batch[slot].name).path, into: &buffer)
                slots.put(slot, scan: scan, buffer: buffer)
            }
            for (slot, (name, named)) in batch.enumerated() {
                let ordinal = opened.nextSegment
                opened.nextSegment += 1
                let path = directory.appendingPathComponent(name).path
                var segment = Segment(first: named, path: path, size: 0, live: 0)
                var settledHere: [UInt64] = []
                var first: UInt64?
                var undecodable: [SegmentStoreDamage] = []
                let (scan, buffer) = slots.take(slot)
                defer { slots.put(slot, scan: FileScan(), buffer: buffer) }
                let size = try visit(scan, path: path, buffer: buffer, damage: &damage) {
                    buffer, offset, sequence, payload in
                    opened.nextSequence = max(opened.nextSequence, sequence + 1)
                    if first == nil {
                        first = sequence
                        segment.first = sequence
                    }
                    if let bytes = UnitCodec.mark(UnsafeRawBufferPointer(rebasing: buffer[payload])) {
                        if sequence > foundMark?.sequence ?? 0 {
                            foundMark = Mark(sequence: sequence, bytes: bytes, segment: ordinal, isCheckpointed: false)
                        }
                        return
                    }
                    guard !settled.contains(sequence) else {
                        settledHere.append(sequence)
                        return
                    }
                    let record = UnsafeRawBufferPointer(rebasing: buffer[payload])
                    guard let header = UnitCodec.header(record), sequence - segment.first <= UInt64(UInt32.max),
                        payload.upperBound <= Int(UInt32.max)
                    else {
                        undecodable.append(
                            SegmentStoreDamage(
                                location: "\(name) offset \(offset)", byteCount: payload.upperBound - offset,
                                isTornTail: false))
                        return
                    }
                    let tenant = UnsafeRawBufferPointer(rebasing: record[header.tenant])
                    let number: Int
                    if let lastTenant, lastTenant.bytes.elementsEqual(tenant) {
                        number = lastTenant.number
                    } else {
                        let text = String(decoding: tenant, as: UTF8.self)
                        if let known = opened.tenantNumbers[text] {
                            number = known
                        } else {
                            number = opened.tenants.count
                            opened.tenantNumbers[text] = number
                            opened.tenants.append(TenantQueue(name: text))
                        }
                        lastTenant = (Array(tenant), number)
                    }
                    opened.tenants[number].add(
                        Entry(
                            key: UInt64(ordinal) << 32 | (sequence - segment.first), offset: UInt32(offset),
                            length: UInt32(payload.upperBound - offset), jsonBytes: UInt32(header.jsonBytes),
                            messages: UInt16(header.messages), state: .ready))
                    segment.live += 1
                    scannedEntries += 1
                }
                damage += undecodable
                scannedBytes += size
                // One estimate of the index's size, so it is not grown by doubling (twice the memory at its peak).
                if !reserved, scannedEntries > 0, let number = lastTenant?.number {
                    reserved = true
                    let estimate = Int(
                        Double(totalBytes) / Double(max(scannedBytes, 1)) * Double(scannedEntries) * 1.05)
                    opened.tenants[number].entries.reserveCapacity(estimate + 16)
                }
                segment.size = size
                if segment.live == 0 {
                    empty.append((ordinal, segment, settledHere))
                } else {
                    segment.settled = settledHere
                    opened.segments[ordinal] = segment
                    opened.storedBytes += size
                    needed += settledHere
                }
            }
        }
        opened.mark = latestMark(checkpoint: opened.checkpoint, found: foundMark)
        if let mark = opened.mark {
            opened.nextSequence = max(opened.nextSequence, mark.sequence + 1)
        }
        for (ordinal, segment, settledHere) in empty {
            if let mark = opened.mark, mark.segment == ordinal {
                // Its units are settled, but its mark is the latest: the checkpoint keeps it before it goes.
                var checkpoint = opened.checkpoint
                checkpoint.mark = CheckpointMark(sequence: mark.sequence, bytes: Data(mark.bytes))
                if (try? writeCheckpoint(checkpoint, in: directory, sync: sync)) == nil {
                    var segment = segment
                    segment.settled = settledHere
                    opened.segments[ordinal] = segment
                    opened.storedBytes += segment.size
                    needed += settledHere
                    continue
                }
                opened.checkpoint = checkpoint
                opened.mark?.segment = nil
                opened.mark?.isCheckpointed = true
            }
            unlink(segment.path)
        }
        for number in opened.tenants.indices {
            let entries = opened.tenants[number].entries
            if zip(entries, entries.dropFirst()).contains(where: { $0.key >= $1.key }) {
                opened.tenants[number].entries.sort { $0.key < $1.key }
            }
        }
        // A schedule is kept only for a unit still held: one of a unit settled since (its acknowledgement
        // cleared it in memory only) must not reach a later unit. No sequence a schedule names is given
        // again either, whatever the other files say.
        for sequence in opened.checkpoint.retryStates.keys where sequence <= SegmentRecord.maximumSequence {
            opened.nextSequence = max(opened.nextSequence, sequence + 1)
        }
        if !opened.checkpoint.retryStates.isEmpty {
            let ordered = opened.segments.sorted { $0.value.first < $1.value.first }.map { ($0.key, $0.value.first) }
            opened.checkpoint.retryStates = opened.checkpoint.retryStates.filter {
                isHeld($0.key, segments: ordered, tenants: opened.tenants)
            }
        }
        // Only acknowledgements of records still on disk are needed again. The record is written even with
        // none: its sequence keeps the store's high-water mark, so a store emptied by one run and opened by
        // the next never numbers a record again with a sequence it gave before.
        let record = SegmentRecord(sequence: opened.nextSequence, payload: UnitCodec.encodeSequences(needed.sorted()))
        let acks = record.encoded()
        try replace(acksPath, with: acks, sync: sync)
        opened.acksBytes = acks.count
        opened.nextSequence += 1
        opened.damage = damage
        return opened
    }

    /// Whether the unit numbered `sequence` is indexed (unsettled), given the segments by first sequence.
    private static func isHeld(
        _ sequence: UInt64, segments: [(ordinal: UInt32, first: UInt64)], tenants: [TenantQueue]
    ) -> Bool {
        // The segment holding it: the last one whose first sequence is not after it.
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].first <= sequence { low = middle + 1 } else { high = middle }
        }
        guard low > 0, sequence - segments[low - 1].first <= UInt64(UInt32.max) else { return false }
        let key = UInt64(segments[low - 1].ordinal) << 32 | (sequence - segments[low - 1].first)
        return tenants.contains { $0.position(of: key) != nil }
    }

    /// What reading one file found: its size, its good records, the damage between them.
    struct FileScan: Sendable {
        var size = 0
        var records: [(offset: Int, sequence: UInt64, payload: Range<Int>)] = []
        var stretches: [SegmentScan.Damage] = []
        var validEnd = 0
        var failure: FileStoreError?
    }

    /// Reads a whole file into `buffer` and checks every record (touches nothing else, so two files can be
    /// read at once).
    static func readAndScan(_ path: String, into buffer: inout [UInt8]) -> FileScan {
        var scan = FileScan()
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            if errno != ENOENT { scan.failure = FileStoreError.io("open", path: path, errno: errno) }
            return scan
        }
        defer { close(descriptor) }
        var size = 0
        while true {
            if buffer.count - size < 1 << 20 { buffer += [UInt8](repeating: 0, count: max(1 << 20, buffer.count)) }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + size, $0.count - size) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else {
                scan.failure = FileStoreError.io("read", path: path, errno: errno)
                return scan
            }
            if count == 0 { break }
            size += count
        }
        scan.size = size
        var records: [(offset: Int, sequence: UInt64, payload: Range<Int>)] = []
        (scan.stretches, scan.validEnd) = buffer.withUnsafeBytes { whole in
            SegmentScan.scan(UnsafeRawBufferPointer(rebasing: whole[0..<size])) { records.append(($0, $1, $2)) }
        }
        scan.records = records
        return scan
    }

    /// Reads a whole file into `buffer` and calls `found` for each good record; reports damage, cuts a torn
    /// tail off, and returns the file's size after.
    @discardableResult
    private static func scanFile(
        _ path: String, buffer: inout [UInt8], damage: inout [SegmentStoreDamage],
        found: (UnsafeRawBufferPointer, _ offset: Int, _ sequence: UInt64, _ payload: Range<Int>) -> Void
    ) throws -> Int {
        let scan = readAndScan(path, into: &buffer)
        return try visit(scan, path: path, buffer: buffer, damage: &damage, found: found)
    }

    /// Calls `found` for each good record a scan found; reports its damage, cuts a torn tail off, and
    /// returns the file's size after.
    private static func visit(
        _ scan: FileScan, path: String, buffer: [UInt8], damage: inout [SegmentStoreDamage],
        found: (UnsafeRawBufferPointer, _ offset: Int, _ sequence: UInt64, _ payload: Range<Int>) -> Void
    ) throws -> Int {
        if let failure = scan.failure { throw failure }
        buffer.withUnsafeBytes { whole in
            let bytes = UnsafeRawBufferPointer(rebasing: whole[0..<scan.size])
            for record in scan.records { found(bytes, record.offset, record.sequence, record.payload) }
        }
        let name = (path as NSString).lastPathComponent
        for stretch in scan.stretches {
            damage.append(
                SegmentStoreDamage(
                    location: "\(name) offset \(stretch.offset)", byteCount: stretch.byteCount,
                    isTornTail: stretch.isTail))
        }
        if scan.validEnd < scan.size, scan.stretches.last?.isTail == true {
            guard truncate(path, off_t(scan.validEnd)) == 0 else {
                throw FileStoreError.io("truncate", path: path, errno: errno)
            }
            return scan.validEnd
        }
        return scan.size
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Writes a file whole: a temp file, `fsync`, rename over, `fsync` of the directory.
    ///
    /// Throws when any step fails, the directory's open and `fsync` included: until the directory is synced
    /// the rename may not survive a power cut, so the file is not reported durable (the caller keeps the
    /// segment its checkpoint would have let go, or reports the store failure). After a throw the file at
    /// `path` is the old one or the new one, whole.
    ///
    /// - Parameter sync: `fsync`, or a stand-in for tests.
    /// - Parameter keepingOpen: Whether to return the new file's descriptor, open for appending (the caller
    ///   closes it), rather than close it: acks.log is appended to again at once, and a descriptor opened
    ///   after the rename could fail, leaving the old, unlinked file the only one open.
    /// - Returns: The descriptor when `keepingOpen`, else -1.
    @discardableResult
    static func replace(_ path: String, with bytes: [UInt8], sync: (Int32) -> Int32, keepingOpen: Bool = false)
        throws -> Int32
    {
        let temp = path + ".tmp"
        let descriptor = Glibc.open(
            temp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: temp, errno: errno) }
        var kept = false
        defer { if !kept { close(descriptor) } }
        try writeAll(descriptor, bytes, path: temp)
        guard sync(descriptor) == 0 else { throw FileStoreError.io("fsync", path: temp, errno: errno) }
        guard rename(temp, path) == 0 else { throw FileStoreError.io("rename", path: temp, errno: errno) }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = Glibc.open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw FileStoreError.io("open", path: parent, errno: errno) }
        defer { close(directory) }
        guard sync(directory) == 0 else { throw FileStoreError.io("fsync", path: parent, errno: errno) }
        kept = keepingOpen
        return keepingOpen ? descriptor : -1
    }

    static func openAppending(_ path: String) throws -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: path, errno: errno) }
        return descriptor
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try writeAll(descriptor, $0, path: path) }
    }

    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw FileStoreError.io("write", path: path, errno: errno) }
            written += count
        }
    }

    /// The tenant's number, its queue made on first use.
    func tenantNumber(_ tenant: String) throws -> Int {
        if let number = tenantNumbers[tenant] { return number }
        guard tenant.utf8.count <= Int(UInt16.max) else {
            throw FileStoreError.damaged("a tenant name of more than 65535 bytes cannot be stored")
        }
        tenants.append(TenantQueue(name: tenant))
        tenantNumbers[tenant] = tenants.count - 1
        return tenants.count - 1
    }

    /// The sequence of the record an entry key names.
    func sequence(of key: UInt64) -> UInt64 {
        (segments[UInt32(truncatingIfNeeded: key >> 32)]?.first ?? 0) + (key & 0xFFFF_FFFF)
    }

    func segmentName(_ segment: UInt32) -> String {
        segments[segment].map { ($0.path as NSString).lastPathComponent } ?? "segment \(segment)"
    }

    /// Appends `bytes[range]` to the active segment; on failure cuts the file back to what it held, so a
    /// half-written record never sits before later ones.
    func write(_ bytes: [UInt8], _ range: Range<Int>) throws {
        guard !range.isEmpty, let active, let segment = segments[active.segment] else { return }
        do {
            try bytes.withUnsafeBytes {
                try Self.writeAll(active.descriptor, UnsafeRawBufferPointer(rebasing: $0[range]), path: segment.path)
            }
        } catch {
            _ = ftruncate(active.descriptor, off_t(segment.size))
            throw error
        }
        segments[active.segment]?.size += range.count
        storedBytes += range.count
    }

    /// Undoes the records of an append that threw (its write or its `fsync` failed), so that a reopen never
    /// delivers what a caller was told failed. Records at the end of the active segment, with nothing
    /// written after them (`writtenThrough` is where this append's write ended), are cut off; any others (in
    /// an earlier segment, or with another append's records after them) are acknowledged, and a mark written
    /// with them is superseded in the checkpoint. After a failed `fsync` the active segment is sealed: the
    /// next append starts a new file rather than trust this one further.
    ///
    /// An acknowledgement is synced lazily: a power cut soon after may bring such records back (at least
    /// once), a crash of the process does not.
    func abandon(_ entries: ArraySlice<Entry>, writtenThrough end: (segment: UInt32, size: Int)?, mark written: Mark?) {
        guard !entries.isEmpty else { return }
        var left = Array(entries)
        var markCut = false
        if let end, let active, active.segment == end.segment, segments[end.segment]?.size == end.size,
            let start = left.lazy.filter({ $0.segment == end.segment }).map({ Int($0.offset) }).min(),
            ftruncate(active.descriptor, off_t(start)) == 0
        {
            segments[end.segment]?.size = start
            storedBytes -= end.size - start
            left.removeAll { $0.segment == end.segment }
            markCut = written?.segment == end.segment
        }
        if !left.isEmpty {
            let sequences = left.map { sequence(of: $0.key) }
            let record = SegmentRecord(sequence: nextSequence, payload: UnitCodec.encodeSequences(sequences)).encoded()
            nextSequence += 1
            if (try? Self.writeAll(acks, record, path: "acks.log")) != nil {
                commit.noteWrittenLazily(acks)
                acksBytes += record.count
                for (entry, sequence) in zip(left, sequences) { segments[entry.segment]?.settled.append(sequence) }
                neededAcknowledgements += left.count
            }
        }
        if written != nil, !markCut {
            // The mark record is still on disk and later than the one in force: the checkpoint outranks it.
            mark = Mark(sequence: nextSequence, bytes: mark?.bytes ?? [], segment: nil, isCheckpointed: false)
            nextSequence += 1
            try? writeCheckpoint()
        }
        for entry in entries { segments[entry.segment]?.live -= 1 }
        if let end, let active, active.segment == end.segment {
            commit.retire(active.descriptor)
            self.active = nil
        }
        for segment in Set(entries.map(\.segment)) where segments[segment]?.live == 0 && segment != active?.segment {
            deleteSegment(segment)
        }
        compactAcknowledgementsIfNeeded()
    }

    /// Rewrites acks.log with only the acknowledgements still needed (those of settled units whose segments
    /// are on disk) once it holds more than twice that and at least ``acksCompactionFloor``: appended at
    /// every settlement and otherwise rewritten only on open, it grew without bound in a long-running
    /// process, past `maximumBytes`, and the next open read every sequence it held into one set.
    ///
    /// The rewrite is ``replace(_:with:sync:keepingOpen:)`` (temp file, `fsync`, rename, `fsync` of the
    /// directory), so a crash at any point leaves the old log or the new one, each saying the same about
    /// every record still on disk; it also makes the acknowledgements synced until now only lazily durable.
    /// One that fails is left for the log to grow by the floor again (the old log is intact and still
    /// appended to).
    func compactAcknowledgementsIfNeeded() {
        let needed = SegmentRecord.headerSize + 8 * neededAcknowledgements
        guard acksBytes >= max(acksCompactionFloor, nextAcksCompaction), acksBytes > 2 * needed else { return }
        var sequences: [UInt64] = []
        sequences.reserveCapacity(neededAcknowledgements)
        for segment in segments.values { sequences += segment.settled }
        sequences.sort()
        let record = SegmentRecord(sequence: nextSequence, payload: UnitCodec.encodeSequences(sequences)).encoded()
        nextSequence += 1
        let path = directory.appendingPathComponent("acks.log").path
        do {
            let descriptor = try Self.replace(path, with: record, sync: replaceSync, keepingOpen: true)
            // The old file is unlinked: synced (harmless) and closed by the sync thread, which may hold it.
            commit.retire(acks)
            acks = descriptor
            acksBytes = record.count
            nextAcksCompaction = 0
        } catch {
            nextAcksCompaction = acksBytes + acksCompactionFloor
        }
    }

    func startSegment(first sequence: UInt64) throws {
        if let active {
            commit.retire(active.descriptor)
            self.active = nil
            if segments[active.segment]?.live == 0 { deleteSegment(active.segment) }
        }
        let path = directory.appendingPathComponent(String(format: "segment-%016llx.log", sequence)).path
        let descriptor = try Self.openAppending(path)
        let size = Self.fileSize(path)
        // A file just made: its directory entry is synced by the pass that syncs its first records.
        if size == 0 { commit.noteChanged(directoryDescriptor) }
        segments[nextSegment] = Segment(first: sequence, path: path, size: size, live: 0)
        storedBytes += size
        active = (nextSegment, descriptor)
        nextSegment += 1
    }

    func deleteSegment(_ segment: UInt32) {
        guard segments[segment] != nil, markAllowsDeleting(segment),
            let removed = segments.removeValue(forKey: segment)
        else { return }
        unlink(removed.path)
        storedBytes -= removed.size
        neededAcknowledgements -= removed.settled.count
        if let reader, reader.segment == segment {
            close(reader.descriptor)
            self.reader = nil
        }
    }

    /// Writes the settled units' sequences to `acks.log` (synced within a second, or by the interval, and
    /// never waited for: a lost acknowledgement only means the unit is sent again) and drops them from the
    /// index.
    func acknowledge(_ keys: [UInt64], tenant number: Int) throws {
        guard !keys.isEmpty else { return }
        let sequences = keys.map(sequence(of:))
        let record = SegmentRecord(sequence: nextSequence, payload: UnitCodec.encodeSequences(sequences)).encoded()
        nextSequence += 1
        try Self.writeAll(acks, record, path: "acks.log")
        commit.noteWrittenLazily(acks)
        acksBytes += record.count
        defer { compactAcknowledgementsIfNeeded() }
        for (key, sequence) in zip(keys, sequences) {
            guard let position = tenants[number].position(of: key) else { continue }
            let entry = tenants[number].entries[position]
            guard entry.state != .settled else { continue }
            tenants[number].mark(position, .settled)
            segments[entry.segment]?.settled.append(sequence)
            neededAcknowledgements += 1
            // A unit settled before any claim took it (dropped after the mark): its messages go too.
            if entry.state == .ready, recent.removeValue(forKey: key) != nil { recentBytes -= Int(entry.jsonBytes) }
            retryStates[sequence] = nil
            segments[entry.segment]?.live -= 1
            if segments[entry.segment]?.live == 0 {
                // The active segment too: a store that delivered everything holds nothing, on disk or against
                // its bound. The next append starts a new file (an append in flight counts its units live, so
                // it never loses its segment here).
                if let active, active.segment == entry.segment {
                    commit.retire(active.descriptor)
                    self.active = nil
                }
                deleteSegment(entry.segment)
            }
        }
        tenants[number].compact()
    }

    /// What reading a unit's record back gave.
    enum ReadUnit {
        case messages([SegmentMessage])
        /// The record no longer checks out (checksum, sequence, length).
        case damaged
        /// The file could not be opened or read.
        case failed(any Error)
    }

    /// The entries' messages: taken out of ``recent`` where they are there, the others read back
    /// (``readUnits(_:)``); in the entries' order.
    func recallOrRead(_ entries: [Entry]) -> [ReadUnit] {
        guard !recent.isEmpty else { return readUnits(entries) }
        var units: [ReadUnit] = []
        units.reserveCapacity(entries.count)
        var unread: [(position: Int, entry: Entry)] = []
        for entry in entries {
            if let messages = recent.removeValue(forKey: entry.key) {
                recentBytes -= Int(entry.jsonBytes)
                units.append(.messages(messages))
            } else {
                unread.append((units.count, entry))
                units.append(.damaged)
            }
        }
        guard !unread.isEmpty else { return units }
        for (read, (position, _)) in zip(readUnits(unread.map(\.entry)), unread) { units[position] = read }
        return units
    }

    /// Reads the entries' records back (one `pread` for each run of adjacent records), checks each one's
    /// checksum and sequence again, and decodes its messages.
    func readUnits(_ entries: [Entry]) -> [ReadUnit] {
        var units: [ReadUnit] = []
        units.reserveCapacity(entries.count)
        var start = 0
        while start < entries.count {
            var end = start + 1
            while end < entries.count, entries[end].segment == entries[start].segment,
                entries[end].offset == entries[end - 1].offset + entries[end - 1].length
            {
                end += 1
            }
            let segment = entries[start].segment
            let first = Int(entries[start].offset)
            let count = Int(entries[end - 1].offset + entries[end - 1].length) - first
            let bytes: [UInt8]
            do {
                let descriptor = try readDescriptor(segment)
                bytes = try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                    var done = 0
                    while done < count {
                        let read = readAt(descriptor, buffer.baseAddress! + done, count - done, off_t(first + done))
                        if read < 0, errno == EINTR { continue }
                        guard read > 0 else {
                            initialized = 0
                            throw FileStoreError.io(
                                "read", path: segments[segment]?.path ?? "", errno: read == 0 ? EIO : errno)
                        }
                        done += read
                    }
                    initialized = count
                }
            } catch {
                units += Array(repeating: .failed(error), count: end - start)
                start = end
                continue
            }
            bytes.withUnsafeBytes { buffer in
                for entry in entries[start..<end] {
                    let offset = Int(entry.offset) - first
                    guard let found = SegmentRecord.check(buffer, at: offset),
                        found.payload.upperBound == offset + Int(entry.length),
                        found.sequence == sequence(of: entry.key),
                        let messages = UnitCodec.messages(UnsafeRawBufferPointer(rebasing: buffer[found.payload]))
                    else {
                        units.append(.damaged)
                        continue
                    }
                    units.append(.messages(messages))
                }
            }
            start = end
        }
        return units
    }

    private func readDescriptor(_ segment: UInt32) throws -> Int32 {
        if let reader, reader.segment == segment { return reader.descriptor }
        if let reader { close(reader.descriptor) }
        reader = nil
        let path = segments[segment]?.path ?? ""
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: path, errno: errno) }
        reader = (segment, descriptor)
        return descriptor
    }

    func writeCheckpoint() throws {
        let kept = mark.map { CheckpointMark(sequence: $0.sequence, bytes: Data($0.bytes)) }
        try Self.writeCheckpoint(
            Checkpoint(retryStates: retryStates, pauses: pauses, mark: kept), in: directory, sync: replaceSync)
        mark?.isCheckpointed = true
    }

    static func writeCheckpoint(_ checkpoint: Checkpoint, in directory: URL, sync: (Int32) -> Int32) throws {
        let data = try JSONEncoder().encode(checkpoint)
        try replace(directory.appendingPathComponent("checkpoint.json").path, with: [UInt8](data), sync: sync)
    }
}

/// A unit's record payload, little-endian:
///
/// `appended at (Int64, ms since 1970) | message count (UInt16) | tenant length (UInt16) | JSON bytes
/// (UInt32) | tenant | per message: kind, messageId, responseId (each UInt16 length, 0xFFFF for none, and
/// UTF-8) | JSON length (UInt32) | JSON`.
///
/// The fixed header is all that opening reads; a claim decodes the messages without parsing their JSON
/// again (it was checked when recorded, and the record's checksum covers it).
enum UnitCodec {
    static let headerSize = 16

    /// The size of the unit's record (header and payload), as ``writeRecord(_:tenant:appendedAt:to:)``
    /// writes it.
    static func recordSize(_ unit: [SegmentMessage], tenantBytes: Int) -> Int {
        var size = SegmentRecord.headerSize + headerSize + tenantBytes
        for message in unit {
            size += 2 + textBytes(message.kind.rawValue)
            size += 2 + message.withMessageIDUTF8 { min($0.count, maximumText) }
            size += 2 + textBytes(message.responseID)
            size += 4 + message.json.count
        }
        return size
    }

    /// Writes the unit's record at `start`, exactly ``recordSize(_:tenantBytes:)`` bytes: a record header
    /// whose length is set and whose checksum and sequence are left zero (``SegmentRecord/seal(_:at:sequence:)``
    /// sets them when the record's place in the store is known), then the payload. Returns the record's
    /// size and the unit's JSON bytes.
    ///
    /// Straight stores and copies into memory the caller sized: a group of 256 one-pair callers spent a
    /// sixth of its CPU time in appending these fields to an array one by one (a capacity and uniqueness
    /// check each).
    static func writeRecord(
        _ unit: [SegmentMessage], tenant: UnsafeBufferPointer<UInt8>, appendedAt: Int64,
        to start: UnsafeMutableRawPointer
    ) -> (size: Int, jsonBytes: Int) {
        var cursor = start + SegmentRecord.headerSize
        var jsonBytes = 0
        for message in unit { jsonBytes += message.json.count }
        store(appendedAt, &cursor)
        store(UInt16(unit.count), &cursor)
        store(UInt16(truncatingIfNeeded: tenant.count), &cursor)
        store(UInt32(truncatingIfNeeded: jsonBytes), &cursor)
        copy(tenant, &cursor)
        for message in unit {
            storeText(message.kind.rawValue, &cursor)
            message.withMessageIDUTF8 { storeText($0, &cursor) }
            storeText(message.responseID, &cursor)
            store(UInt32(truncatingIfNeeded: message.json.count), &cursor)
            message.json.withUnsafeBufferPointer { copy($0, &cursor) }
        }
        let length = cursor - start - SegmentRecord.headerSize
        start.storeBytes(of: UInt32(truncatingIfNeeded: length).littleEndian, as: UInt32.self)
        (start + 4).initializeMemory(as: UInt8.self, repeating: 0, count: SegmentRecord.headerSize - 4)
        return (cursor - start, jsonBytes)
    }

    /// A text's bytes in a record, at most: longer ones are cut (65535 means none).
    private static let maximumText = Int(UInt16.max) - 1

    private static func textBytes(_ text: String?) -> Int { min(text?.utf8.count ?? 0, maximumText) }

    private static func store<T: FixedWidthInteger>(_ value: T, _ cursor: inout UnsafeMutableRawPointer) {
        cursor.storeBytes(of: value.littleEndian, as: T.self)
        cursor += MemoryLayout<T>.size
    }

    private static func copy(_ bytes: UnsafeBufferPointer<UInt8>, _ cursor: inout UnsafeMutableRawPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        cursor.copyMemory(from: base, byteCount: bytes.count)
        cursor += bytes.count
    }

    private static func storeText(_ text: String?, _ cursor: inout UnsafeMutableRawPointer) {
        guard var text else {
            store(UInt16.max, &cursor)
            return
        }
        text.withUTF8 { storeText($0, &cursor) }
    }

    private static func storeText(_ utf8: UnsafeBufferPointer<UInt8>, _ cursor: inout UnsafeMutableRawPointer) {
        let count = min(utf8.count, maximumText)
        store(UInt16(count), &cursor)
        copy(UnsafeBufferPointer(rebasing: utf8.prefix(count)), &cursor)
    }

    /// The fixed header: what opening needs.
    static func header(_ payload: UnsafeRawBufferPointer) -> (
        appendedAt: Int64, messages: Int, jsonBytes: Int, tenant: Range<Int>
    )? {
        guard payload.count >= headerSize else { return nil }
        let tenantLength = Int(UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: 10, as: UInt16.self)))
        guard payload.count >= headerSize + tenantLength else { return nil }
        return (
            Int64(littleEndian: payload.loadUnaligned(as: Int64.self)),
            Int(UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt16.self))),
            Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 12, as: UInt32.self))),
            headerSize..<headerSize + tenantLength
        )
    }

    static func messages(_ payload: UnsafeRawBufferPointer) -> [SegmentMessage]? {
        guard let header = header(payload) else { return nil }
        var offset = header.tenant.upperBound
        var messages: [SegmentMessage] = []
        messages.reserveCapacity(header.messages)
        for _ in 0..<header.messages {
            guard case .some(let kind?) = text(payload, &offset), case .some(let id?) = text(payload, &offset),
                case .some(let response) = text(payload, &offset), payload.count - offset >= 4
            else { return nil }
            let length = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            offset += 4
            guard payload.count - offset >= length else { return nil }
            let json = [UInt8](UnsafeRawBufferPointer(rebasing: payload[offset..<offset + length]))
            offset += length
            messages.append(
                SegmentMessage(
                    kind: SegmentMessage.Kind(rawValue: kind), messageID: id, responseID: response, json: json))
        }
        return offset == payload.count ? messages : nil
    }

    static func encodeSequences(_ sequences: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(sequences.count * 8)
        for sequence in sequences { append(sequence, &bytes) }
        return bytes
    }

    static func decodeSequences(_ bytes: UnsafeRawBufferPointer) -> [UInt64] {
        stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map {
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0, as: UInt64.self))
        }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    /// A length-prefixed text: `.some(nil)` for none, `nil` when the bytes run out.
    private static func text(_ payload: UnsafeRawBufferPointer, _ offset: inout Int) -> String?? {
        guard payload.count - offset >= 2 else { return nil }
        let length = UInt16(littleEndian: payload.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        offset += 2
        if length == UInt16.max { return .some(nil) }
        guard payload.count - offset >= Int(length) else { return nil }
        defer { offset += Int(length) }
        return String(decoding: UnsafeRawBufferPointer(rebasing: payload[offset..<offset + Int(length)]), as: UTF8.self)
    }
}

/// The files read at once on open, one slot each: the thread reading a file takes its slot's buffer and
/// puts it back with what it found; the opener then takes both.
final class ScanSlots: @unchecked Sendable {
    // @unchecked: `slots` is read and written only with `lock` held; each thread touches its own slot.
    private let lock = NSLock()
    private var slots: [(scan: FileMessageStore.FileScan, buffer: [UInt8])]

    init(count: Int) { slots = Array(repeating: (FileMessageStore.FileScan(), []), count: count) }

    var count: Int { lock.withLock { slots.count } }

    func takeBuffer(_ slot: Int) -> [UInt8] {
        lock.withLock {
            defer { slots[slot].buffer = [] }
            return slots[slot].buffer
        }
    }

    func put(_ slot: Int, scan: FileMessageStore.FileScan, buffer: [UInt8]) {
        lock.withLock { slots[slot] = (scan, buffer) }
    }

    func take(_ slot: Int) -> (scan: FileMessageStore.FileScan, buffer: [UInt8]) {
        lock.withLock {
            defer { slots[slot] = (FileMessageStore.FileScan(), []) }
            return slots[slot]
        }
    }
}
