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
    }

    struct Opened {
        var entries: [UInt64: Entry] = [:]
        var queues: [String: [UInt64]] = [:]
        var segments: [UInt64: Segment] = [:]
        var nextSequence: UInt64 = 1
        var checkpoint = Checkpoint()
        var damage: [SegmentStoreDamage] = []
    }

    /// Reads the directory: acknowledgements first, then every segment; cuts torn tails, deletes settled
    /// segments, and rewrites the acknowledgement log with what is still needed.
    static func open(_ directory: URL) throws -> Opened {
        var opened = Opened()
        let acksPath = directory.appendingPathComponent("acks.log").path
        let ackScan = try scanFile(acksPath, cutTornTail: true, damage: &opened.damage)
        var settled = Set<UInt64>()
        for (_, record) in ackScan {
            opened.nextSequence = max(opened.nextSequence, record.sequence + 1)
            settled.formUnion(UnitCodec.decodeSequences(record.payload))
        }
        var needed: [UInt64] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.filter({ $0.hasPrefix("segment-") && $0.hasSuffix(".log") }).sorted() {
            guard let id = UInt64(name.dropFirst("segment-".count).dropLast(".log".count), radix: 16) else { continue }
            let path = directory.appendingPathComponent(name).path
            let records = try scanFile(path, cutTornTail: true, damage: &opened.damage)
            var segment = Segment(path: path, size: fileSize(path), live: 0)
            var settledHere: [UInt64] = []
            for (offset, record) in records {
                opened.nextSequence = max(opened.nextSequence, record.sequence + 1)
                guard !settled.contains(record.sequence) else {
                    settledHere.append(record.sequence)
                    continue
                }
                guard let (tenant, messages) = UnitCodec.decode(record.payload) else {
                    opened.damage.append(
                        SegmentStoreDamage(
                            location: "\(name) offset \(offset)", byteCount: record.payload.count, isTornTail: false))
                    continue
                }
                opened.entries[record.sequence] = Entry(tenant: tenant, messages: messages, segment: id)
                opened.queues[tenant, default: []].append(record.sequence)
                segment.live += 1
            }
            if segment.live == 0 {
                unlink(path)
            } else {
                opened.segments[id] = segment
                needed += settledHere
            }
        }
        for tenant in opened.queues.keys { opened.queues[tenant]?.sort() }
        // Only acknowledgements of records still on disk are needed again.
        let record = SegmentRecord(sequence: opened.nextSequence, payload: UnitCodec.encodeSequences(needed.sorted()))
        try replace(acksPath, with: needed.isEmpty ? [] : record.encoded())
        if needed.isEmpty == false { opened.nextSequence += 1 }
        if let data = FileManager.default.contents(atPath: directory.appendingPathComponent("checkpoint.json").path) {
            opened.checkpoint = (try? JSONDecoder().decode(Checkpoint.self, from: data)) ?? Checkpoint()
        }
        return opened
    }

    private static func scanFile(_ path: String, cutTornTail: Bool, damage: inout [SegmentStoreDamage]) throws
        -> [(offset: Int, record: SegmentRecord)]
    {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let scan = SegmentScan.scan([UInt8](data))
        let name = (path as NSString).lastPathComponent
        for stretch in scan.damage {
            damage.append(
                SegmentStoreDamage(
                    location: "\(name) offset \(stretch.offset)", byteCount: stretch.byteCount,
                    isTornTail: stretch.isTail))
        }
        if cutTornTail, scan.validEnd < data.count, scan.damage.last?.isTail == true {
            guard truncate(path, off_t(scan.validEnd)) == 0 else {
                throw FileStoreError.io("truncate", path: path, errno: errno)
            }
        }
        return scan.records
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// Writes a file whole: a temp file, `fsync`, rename over, `fsync` of the directory.
    static func replace(_ path: String, with bytes: [UInt8]) throws {
        let temp = path + ".tmp"
        let descriptor = Glibc.open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: temp, errno: errno) }
        defer { close(descriptor) }
        try writeAll(descriptor, bytes, path: temp)
        guard fsync(descriptor) == 0 else { throw FileStoreError.io("fsync", path: temp, errno: errno) }
        guard rename(temp, path) == 0 else { throw FileStoreError.io("rename", path: temp, errno: errno) }
        let directory = Glibc.open((path as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }

    static func openAppending(_ path: String) throws -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: path, errno: errno) }
        return descriptor
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written)
            }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw FileStoreError.io("write", path: path, errno: errno) }
            written += count
        }
    }

    func write(_ pending: inout [UInt8]) throws {
        guard !pending.isEmpty, let active, let segment = segments[active.id] else { return }
        try Self.writeAll(active.descriptor, pending, path: segment.path)
        segments[active.id]?.size += pending.count
        pending = []
    }

    func sync(_ descriptor: Int32?) throws {
        guard let descriptor else { return }
        switch configuration.sync {
        case .beforeAcknowledging:
            break
        case .interval(let interval):
            guard ContinuousClock.now - lastSync >= interval else { return }
        case .operatingSystem:
            return
        }
        guard fsync(descriptor) == 0 else { throw FileStoreError.io("fsync", path: directory.path, errno: errno) }
        lastSync = ContinuousClock.now
    }

    func startSegment(first sequence: UInt64) throws {
        if let active {
            try sync(active.descriptor)
            close(active.descriptor)
            if segments[active.id]?.live == 0, let path = segments[active.id]?.path {
                unlink(path)
                segments[active.id] = nil
            }
        }
        let path = directory.appendingPathComponent(String(format: "segment-%016llx.log", sequence)).path
        let descriptor = try Self.openAppending(path)
        segments[sequence] = Segment(path: path, size: Self.fileSize(path), live: 0)
        active = (sequence, descriptor)
    }

    func acknowledge(_ sequences: [UInt64]) throws {
        guard !sequences.isEmpty else { return }
        let record = SegmentRecord(sequence: nextSequence, payload: UnitCodec.encodeSequences(sequences))
        nextSequence += 1
        try Self.writeAll(acks, record.encoded(), path: "acks.log")
        try sync(acks)
        let done = Set(sequences)
        for sequence in sequences {
            guard let entry = entries.removeValue(forKey: sequence) else { continue }
            retryStates[sequence] = nil
            segments[entry.segment]?.live -= 1
            if let segment = segments[entry.segment], segment.live == 0, entry.segment != active?.id {
                unlink(segment.path)
                segments[entry.segment] = nil
            }
        }
        for tenant in queues.keys { queues[tenant]?.removeAll { done.contains($0) } }
    }

    func writeCheckpoint() throws {
        let data = try JSONEncoder().encode(Checkpoint(retryStates: retryStates, pauses: pauses))
        try Self.replace(directory.appendingPathComponent("checkpoint.json").path, with: [UInt8](data))
    }
}

/// A unit's record payload: the tenant, then each message's JSON, length-prefixed (little-endian).
enum UnitCodec {
    static func encode(_ unit: [SegmentMessage], tenant: String) -> [UInt8] {
        var bytes: [UInt8] = []
        append(UInt32(tenant.utf8.count), &bytes)
        bytes += tenant.utf8
        append(UInt32(unit.count), &bytes)
        for message in unit {
            append(UInt32(message.json.count), &bytes)
            bytes += message.json
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> (tenant: String, messages: [SegmentMessage])? {
        var offset = 0
        guard let tenantLength = read(bytes, &offset), let tenant = slice(bytes, &offset, tenantLength),
            let count = read(bytes, &offset)
        else { return nil }
        var messages: [SegmentMessage] = []
        for _ in 0..<count {
            guard let length = read(bytes, &offset), let json = slice(bytes, &offset, length),
                let message = try? SegmentMessage(json: json)
            else { return nil }
            messages.append(message)
        }
        return (String(decoding: tenant, as: UTF8.self), messages)
    }

    static func encodeSequences(_ sequences: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        for sequence in sequences { withUnsafeBytes(of: sequence.littleEndian) { bytes += $0 } }
        return bytes
    }

    static func decodeSequences(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { start in
            (0..<8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[start + $1]) }
        }
    }

    private static func append(_ value: UInt32, _ bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func read(_ bytes: [UInt8], _ offset: inout Int) -> Int? {
        guard bytes.count - offset >= 4 else { return nil }
        let value = (0..<4).reversed().reduce(0) { $0 << 8 | Int(bytes[offset + $1]) }
        offset += 4
        return value
    }

    private static func slice(_ bytes: [UInt8], _ offset: inout Int, _ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
}
