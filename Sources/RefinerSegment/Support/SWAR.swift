/// Byte tests on eight bytes at once (SIMD within a register), shared by the JSON reader's and writer's
/// string scans.
///
/// Each test sets the high bit of every byte of a little-endian word that passes it. Only the lowest flagged
/// byte is exact: a borrow can flag bytes above it, which the scans never look at.
enum SWAR {
    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The bytes below `bound` (at most 0x80).
    @inline(__always)
    static func bytes(below bound: UInt8, in word: UInt64) -> UInt64 {
        (word &- ones &* UInt64(bound)) & ~word & highs
    }

    /// The bytes equal to `byte`.
    @inline(__always)
    static func bytes(equalTo byte: UInt8, in word: UInt64) -> UInt64 {
        let difference = word ^ (ones &* UInt64(byte))
        return (difference &- ones) & ~difference & highs
    }

    /// The bytes of 0x80 and above.
    @inline(__always)
    static func nonASCIIBytes(in word: UInt64) -> UInt64 { word & highs }
}
