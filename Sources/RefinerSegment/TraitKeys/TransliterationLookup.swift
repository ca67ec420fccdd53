/// The per-scalar fold of steps 1 to 4 of the trait-key rules, loaded once from the generated table.
struct TransliterationTable: Sendable {
    /// The table, parsed on first use (Swift's lazy, thread-safe initialization of globals and statics).
    static let shared = TransliterationTable(source: transliterationTableSource)

    private let ranges: [UInt32: Range<Int>]
    private let bytes: [UInt8]

    init(source: String) {
        var ranges: [UInt32: Range<Int>] = [:]
        var bytes: [UInt8] = []
        for entry in source.utf8.split(separator: UInt8(ascii: "|")) {
            guard let equals = entry.firstIndex(of: UInt8(ascii: "=")),
                let scalar = UInt32(String(decoding: entry[..<equals], as: UTF8.self), radix: 16)
            else { continue }
            let start = bytes.count
            bytes.append(contentsOf: entry[entry.index(after: equals)...])
            ranges[scalar] = start..<bytes.count
        }
        self.ranges = ranges
        self.bytes = bytes
    }

    /// The folded ASCII form of a non-ASCII scalar (possibly empty: a dropped mark), or `nil` for a separator.
    func folded(_ scalar: Unicode.Scalar) -> ArraySlice<UInt8>? {
        guard let range = ranges[scalar.value] else { return nil }
        return bytes[range]
    }
}
