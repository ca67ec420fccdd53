/// One record of a segment file: `length | CRC32C | sequence | payload`, little-endian.
///
/// - `length` (4 bytes): the payload's size.
/// - `CRC32C` (4 bytes): the checksum of the sequence number and the payload, so a record whose bytes were
///   torn by a crash or flipped on disk is told from a good one.
/// - `sequence` (8 bytes): the record's number, increasing through the store's life, so a record found by
///   resynchronising after damage is known to belong where it was found.
/// - `payload`: what the store keeps (a unit of messages, an acknowledgement).
struct SegmentRecord: Equatable {
    /// The bytes before the payload.
    static let headerSize = 16
    /// The largest payload accepted on reading: a length past it is damage, not a record.
    static let maximumPayload = 64 << 20

    var sequence: UInt64
    var payload: [UInt8]

    /// The record's bytes, as appended to a segment file.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerSize + payload.count)
        Self.append(UInt32(payload.count), to: &bytes)
        var checked: [UInt8] = []
        checked.reserveCapacity(8)
        Self.append(sequence, to: &checked)
        Self.append(CRC32C.checksum(payload, continuing: CRC32C.checksum(checked)), to: &bytes)
        bytes.append(contentsOf: checked)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// The record at `offset` when one is there whole and its checksum holds; `nil` otherwise.
    static func decode(_ bytes: [UInt8], at offset: Int) -> (record: SegmentRecord, end: Int)? {
        guard offset >= 0, bytes.count - offset >= headerSize else { return nil }
        let length = Int(read(UInt32.self, bytes, offset))
        guard length <= maximumPayload, bytes.count - offset - headerSize >= length else { return nil }
        let expected = read(UInt32.self, bytes, offset + 4)
        let sequenceStart = offset + 8
        let payloadStart = offset + headerSize
        let crc = CRC32C.checksum(
            bytes[payloadStart..<payloadStart + length],
            continuing: CRC32C.checksum(bytes[sequenceStart..<payloadStart]))
        guard crc == expected else { return nil }
        let record = SegmentRecord(
            sequence: read(UInt64.self, bytes, sequenceStart),
            payload: Array(bytes[payloadStart..<payloadStart + length]))
        return (record, payloadStart + length)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func read<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + index]) }
        return value
    }
}

/// What reading a segment file back found: the good records, the damage between them, and where the
/// file's good part ends (a torn tail after it is cut off on open).
struct SegmentScan: Equatable {
    /// A stretch that held no good record.
    struct Damage: Equatable {
        var offset: Int
        var byteCount: Int
        /// At the end of the file, with no good record after it: a write torn by a crash.
        var isTail: Bool
    }

    var records: [(offset: Int, record: SegmentRecord)]
    var damage: [Damage]
    /// The end of the last good record: the length the file is cut to.
    var validEnd: Int

    static func == (lhs: SegmentScan, rhs: SegmentScan) -> Bool {
        lhs.records.map(\.offset) == rhs.records.map(\.offset) && lhs.records.map(\.record) == rhs.records.map(\.record)
            && lhs.damage == rhs.damage && lhs.validEnd == rhs.validEnd
    }

    /// Reads every record of a segment file.
    ///
    /// A record that does not check out is skipped by looking for the next offset where a whole record
    /// with a good checksum and a later sequence number starts: the damage between is reported as a corrupt
    /// record (its messages become a failed outcome). When no good record follows, the rest is a torn tail.
    static func scan(_ bytes: [UInt8]) -> SegmentScan {
        var records: [(offset: Int, record: SegmentRecord)] = []
        var damage: [Damage] = []
        var offset = 0
        var validEnd = 0
        while offset < bytes.count {
            if let (record, end) = SegmentRecord.decode(bytes, at: offset),
                records.last.map({ record.sequence > $0.record.sequence }) ?? true
            {
                records.append((offset, record))
                offset = end
                validEnd = end
                continue
            }
            // Resynchronise: the next good record after this offset, if any.
            var next = offset + 1
            var found: Int?
            while next + SegmentRecord.headerSize <= bytes.count {
                if let (record, _) = SegmentRecord.decode(bytes, at: next),
                    records.last.map({ record.sequence > $0.record.sequence }) ?? true
                {
                    found = next
                    break
                }
                next += 1
            }
            guard let found else {
                damage.append(Damage(offset: offset, byteCount: bytes.count - offset, isTail: true))
                break
            }
            damage.append(Damage(offset: offset, byteCount: found - offset, isTail: false))
            offset = found
        }
        return SegmentScan(records: records, damage: damage, validEnd: validEnd)
    }
}
