/// The per-scalar fold of steps 1 to 4 of the trait-key rules, loaded once from the generated table.
struct TransliterationTable: Sendable {
    /// The table, parsed on first use (Swift's lazy, thread-safe initialization of globals and statics).
    static let shared = TransliterationTable(source: transliterationTableSource)

    /// What a scalar folds to: ``separator``, ``dropped``, or an index into `ranges` plus 2.
    private typealias Slot = UInt16
    private static let separator: Slot = 0
    private static let dropped: Slot = 1

    /// One slot per Basic Multilingual Plane scalar, where nearly all text lives: a lookup is one load.
    private let planeZero: [Slot]
    /// Scalars beyond the Basic Multilingual Plane (mathematical alphanumerics, enclosed letters...).
    private let supplementary: [UInt32: Int]
    private let ranges: [Range<Int>]
    private let bytes: [UInt8]

    init(source: String) {
        var ranges: [Range<Int>] = []
        var bytes: [UInt8] = []
        var planeZero = [Slot](repeating: Self.separator, count: 0x1_0000)
        var supplementary: [UInt32: Int] = [:]
        for entry in source.utf8.split(separator: UInt8(ascii: "|")) {
            guard let equals = entry.firstIndex(of: UInt8(ascii: "=")),
                let scalar = UInt32(String(decoding: entry[..<equals], as: UTF8.self), radix: 16)
            else { continue }
            let start = bytes.count
            bytes.append(contentsOf: entry[entry.index(after: equals)...])
            let range = start..<bytes.count
            let slot = range.isEmpty ? Self.dropped : Slot(ranges.count + 2)
            if !range.isEmpty { ranges.append(range) }
            if scalar < 0x1_0000 {
                planeZero[Int(scalar)] = slot
            } else {
                supplementary[scalar] = range.isEmpty ? -1 : Int(slot)
            }
        }
        // Marks newer than the table's Unicode version are still dropped (step 2), by the standard
        // library's own Unicode data.
        for value in 0x80..<0x1_0000 where planeZero[value] == Self.separator {
            if let scalar = Unicode.Scalar(UInt32(value)), scalar.properties.generalCategory == .nonspacingMark {
                planeZero[value] = Self.dropped
            }
        }
        self.planeZero = planeZero
        self.supplementary = supplementary
        self.ranges = ranges
        self.bytes = bytes
    }

    /// Writes the folded ASCII form of a non-ASCII scalar (letters, digits and apostrophes, nothing for a
    /// dropped mark, a space for a separator) and returns its length: at most twice the scalar's UTF-8 length.
    @inline(__always)
    func write(_ value: UInt32, to output: UnsafeMutablePointer<UInt8>) -> Int {
        let slot: Int
        if value < 0x1_0000 {
            slot = Int(planeZero[Int(value)])
        } else if let found = supplementary[value] {
            slot = found < 0 ? Int(Self.dropped) : found
        } else if let scalar = Unicode.Scalar(value), scalar.properties.generalCategory == .nonspacingMark {
            slot = Int(Self.dropped)
        } else {
            slot = Int(Self.separator)
        }
        switch slot {
        case Int(Self.separator):
            output[0] = UInt8(ascii: " ")
            return 1
        case Int(Self.dropped):
            return 0
        default:
            let range = ranges[slot - 2]
            // A byte loop: a fold is one to six bytes, fewer than a call to `memmove` costs.
            bytes.withUnsafeBufferPointer { source in
                var offset = 0
                while offset < range.count {
                    output[offset] = source[range.lowerBound + offset]
                    offset += 1
                }
            }
            return range.count
        }
    }
}
