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

    /// Steps 1 to 4 over valid UTF-8 (see ``TraitKeyNormalizer/transliterate(_:into:)``): ASCII copied, other
    /// scalars folded. The tables are read through buffer pointers taken once, not array by array per scalar.
    func transliterate(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutablePointer<UInt8>) -> Int {
        planeZero.withUnsafeBufferPointer { planeZero in
            ranges.withUnsafeBufferPointer { ranges in
                bytes.withUnsafeBufferPointer { bytes in
                    var end = 0
                    var index = 0
                    while index < input.count {
                        let lead = input[index]
                        if lead < 0x80 {
                            output[end] = lead
                            end += 1
                            index += 1
                            continue
                        }
                        // Swift strings hold valid UTF-8, so a lead byte tells the sequence's length.
                        let length = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
                        var value = UInt32(lead) & (lead < 0xE0 ? 0x1F : lead < 0xF0 ? 0x0F : 0x07)
                        for offset in 1..<length { value = value << 6 | UInt32(input[index + offset] & 0x3F) }
                        index += length
                        let slot = value < 0x1_0000 ? Int(planeZero[Int(value)]) : supplementarySlot(value)
                        switch slot {
                        case Int(Self.separator):
                            output[end] = UInt8(ascii: " ")
                            end += 1
                        case Int(Self.dropped):
                            break
                        default:
                            // A byte loop: a fold is one to six bytes, fewer than a call to `memmove` costs.
                            let range = ranges[slot - 2]
                            var position = range.lowerBound
                            while position < range.upperBound {
                                output[end] = bytes[position]
                                end += 1
                                position += 1
                            }
                        }
                    }
                    return end
                }
            }
        }
    }

    /// The slot of a scalar beyond the Basic Multilingual Plane.
    private func supplementarySlot(_ value: UInt32) -> Int {
        if let found = supplementary[value] { return found < 0 ? Int(Self.dropped) : found }
        if let scalar = Unicode.Scalar(value), scalar.properties.generalCategory == .nonspacingMark {
            return Int(Self.dropped)
        }
        return Int(Self.separator)
    }
}
