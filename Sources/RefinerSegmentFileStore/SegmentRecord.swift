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
    /// The largest sequence a store gives (2^63 - 1: never reached, one a record a nanosecond for 292
    /// years), so `sequence + 1` never overflows.
    static let maximumSequence = UInt64(Int64.max)

    var sequence: UInt64
    var payload: [UInt8]

    /// The record's bytes, as appended to a segment file.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerSize + payload.count)
        Self.append(sequence: sequence, payload: payload, to: &bytes)
        return bytes
    }

    /// Appends the record of `payload` to `bytes`, with no copy of its own.
    static func append(sequence: UInt64, payload: [UInt8], to bytes: inout [UInt8]) {
        var checked: UInt64 = sequence.littleEndian
        let crc = withUnsafeBytes(of: &checked) { CRC32C.checksum(payload, continuing: CRC32C.checksum($0)) }
        append(UInt32(payload.count), to: &bytes)
        append(crc, to: &bytes)
        append(sequence, to: &bytes)
        bytes.append(contentsOf: payload)
    }

    /// Sets the sequence number and the checksum of the record at `offset` in `bytes`, whose length and
    /// payload are written (``UnitCodec/appendRecord(_:tenant:appendedAt:to:)``).
    static func seal(_ bytes: inout [UInt8], at offset: Int, sequence: UInt64) {
        bytes.withUnsafeMutableBytes { buffer in
            let length = Int(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            buffer.storeBytes(of: sequence.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
            let checked = UnsafeRawBufferPointer(rebasing: buffer[offset + 8..<offset + headerSize + length])
            buffer.storeBytes(of: CRC32C.checksum(checked).littleEndian, toByteOffset: offset + 4, as: UInt32.self)
        }
    }

    /// The record at `offset` in `buffer` when one is there whole, its checksum holds and its sequence is at
    /// most ``maximumSequence``: its sequence and where its payload lies; `nil` otherwise.
    static func check(_ buffer: UnsafeRawBufferPointer, at offset: Int) -> (sequence: UInt64, payload: Range<Int>)? {
        guard offset >= 0, buffer.count - offset >= headerSize else { return nil }
        let length = Int(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        guard length <= maximumPayload, buffer.count - offset - headerSize >= length else { return nil }
        let expected = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        let payloadStart = offset + headerSize
        let crc = CRC32C.checksum(
            UnsafeRawBufferPointer(rebasing: buffer[payloadStart..<payloadStart + length]),
            continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[offset + 8..<payloadStart])))
        guard crc == expected else { return nil }
        let sequence = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        // No store numbers a record past this: one that says so is damage (crafted, or a checksum collision).
        guard sequence <= maximumSequence else { return nil }
        return (sequence, payloadStart..<payloadStart + length)
    }

    /// The record at `offset` when one is there whole and its checksum holds; `nil` otherwise.
    static func decode(_ bytes: [UInt8], at offset: Int) -> (record: SegmentRecord, end: Int)? {
        bytes.withUnsafeBytes { buffer in
            check(buffer, at: offset).map { found in
                (
                    SegmentRecord(sequence: found.sequence, payload: Array(bytes[found.payload])),
                    found.payload.upperBound
                )
            }
        }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
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

    /// Reads every record of a segment file, each as a copy.
    static func scan(_ bytes: [UInt8]) -> SegmentScan {
        var records: [(offset: Int, record: SegmentRecord)] = []
        let (damage, validEnd) = bytes.withUnsafeBytes { buffer in
            scan(buffer) { offset, sequence, payload in
                records.append((offset, SegmentRecord(sequence: sequence, payload: Array(bytes[payload]))))
            }
        }
        return SegmentScan(records: records, damage: damage, validEnd: validEnd)
    }

    /// Reads every record of a segment file in place: `found` gets each good record's offset, sequence and
    /// payload range, in order.
    ///
    /// A record that does not check out is skipped by looking for the next offset where a whole record
    /// with a good checksum and a later sequence number starts: the damage between is reported as a corrupt
    /// record (its messages become a failed outcome). When no good record follows, the rest is a torn tail.
    static func scan(
        _ buffer: UnsafeRawBufferPointer, found: (_ offset: Int, _ sequence: UInt64, _ payload: Range<Int>) -> Void
    ) -> (damage: [Damage], validEnd: Int) {
        var damage: [Damage] = []
        var offset = 0
        var validEnd = 0
        var last: UInt64?
        while offset < buffer.count {
            if let (sequence, payload) = SegmentRecord.check(buffer, at: offset), last.map({ sequence > $0 }) ?? true {
                found(offset, sequence, payload)
                last = sequence
                offset = payload.upperBound
                validEnd = offset
                continue
            }
            // Resynchronise: the next good record after this offset, if any.
            var next = offset + 1
            var resumed: Int?
            while next + SegmentRecord.headerSize <= buffer.count {
                if let (sequence, _) = SegmentRecord.check(buffer, at: next), last.map({ sequence > $0 }) ?? true {
                    resumed = next
                    break
                }
                next += 1
            }
            guard let resumed else {
                damage.append(Damage(offset: offset, byteCount: buffer.count - offset, isTail: true))
                break
            }
            damage.append(Damage(offset: offset, byteCount: resumed - offset, isTail: false))
            offset = resumed
        }
        return (damage, validEnd)
    }
}
