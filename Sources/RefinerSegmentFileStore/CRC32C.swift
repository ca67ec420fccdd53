import CRefinerSegmentCRC32C
import Foundation

/// CRC-32C (Castagnoli, the checksum of iSCSI, ext4 and Kafka's record batches).
///
/// With the processor's instruction where it has one (SSE 4.2 on x86-64, the CRC extension of ARMv8: eight
/// bytes an instruction, several times the table's speed), checked once; else in software, slicing by 8:
/// eight tables let each step fold eight bytes, several times the speed of the one-table loop. Both give
/// the same values (tested on every length and alignment), so a store written with one reads with the other.
///
/// Chosen over CRC-32 (zlib's) for its better error detection on the short records a segment file holds.
enum CRC32C {
    /// Whether this processor has the CRC-32C instruction.
    static let hasInstruction = refiner_segment_crc32c_available() != 0

    /// `tables[k * 256 + byte]`: the checksum step of `byte` followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[index] = crc
        }
        for slice in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The checksum of `bytes`, continuing from `crc` (the checksum of what came before, 0 at the start).
    static func checksum(_ bytes: some ContiguousBytes, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// The checksum of the bytes at `buffer`, continuing from `crc`.
    static func checksum(_ buffer: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard hasInstruction, let base = buffer.baseAddress else { return softwareChecksum(buffer, continuing: crc) }
        return refiner_segment_crc32c(crc, base, buffer.count)
    }

    /// The checksum of the bytes at `buffer`, continuing from `crc`, from the tables (where the processor has
    /// no instruction for it; tests compare the two).
    static func softwareChecksum(_ buffer: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        tables.withUnsafeBufferPointer { table in
            var index = 0
            let count = buffer.count
            while count - index >= 8 {
                let word =
                    UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    ^ UInt64(value)
                value =
                    table[7 * 256 + Int(word & 0xFF)] ^ table[6 * 256 + Int(word >> 8 & 0xFF)]
                    ^ table[5 * 256 + Int(word >> 16 & 0xFF)] ^ table[4 * 256 + Int(word >> 24 & 0xFF)]
                    ^ table[3 * 256 + Int(word >> 32 & 0xFF)] ^ table[2 * 256 + Int(word >> 40 & 0xFF)]
                    ^ table[256 + Int(word >> 48 & 0xFF)] ^ table[Int(word >> 56)]
                index += 8
            }
            while index < count {
                value = table[Int((value ^ UInt32(buffer[index])) & 0xFF)] ^ (value >> 8)
                index += 1
            }
        }
        return ~value
    }
}
