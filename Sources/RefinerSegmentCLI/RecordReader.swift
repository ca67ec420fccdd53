/// One input record: a line of JSON Lines, or a pretty-printed JSON document that spans several lines.
enum InputRecord {
    /// A record's bytes and the lines it came from.
    case record(lines: ClosedRange<Int>, bytes: [UInt8])
    /// A record longer than ``LineReader/maximumLineBytes``, skipped unread.
    case tooLong(lines: ClosedRange<Int>, byteCount: Int)
    /// A pretty-printed document whose braces never balance before the input ends.
    case unterminated(lines: ClosedRange<Int>)
    /// A pretty-printed document cut short by a line that can only start a new record (see
    /// ``RecordReader``); that line is read again as a record of its own.
    case interrupted(lines: ClosedRange<Int>, by: Int)

    /// Where the record is, for messages: `line 3` or `lines 3-40`.
    static func location(_ lines: ClosedRange<Int>) -> String {
        lines.count == 1 ? "line \(lines.lowerBound)" : "lines \(lines.lowerBound)-\(lines.upperBound)"
    }
}

/// Splits input into records: JSON Lines, where a pretty-printed JSON document also counts as one record.
///
/// The rule, simple enough to state in the usage text: a line that holds only `{` (spaces around it
/// allowed) starts a document, which runs to the line where its braces and brackets balance (those inside
/// strings do not count); every other line is one record. Such a line can never be a JSON Lines record on
/// its own, so the rule changes the meaning of no valid JSON Lines input, and a bad line elsewhere stays
/// one bad line instead of swallowing the lines after it. Pretty printers (`jq`, `JSONEncoder`,
/// `JSON.stringify(value, null, 2)`, Python's `json.dumps(value, indent=2)`) all start an object that way,
/// so a saved webhook payload renders as it is. A UTF-8 byte order mark at the start of the input is dropped.
///
/// A lone `{` that is not the start of a document (a stray line, a record cut short) must not swallow the
/// records after it: inside a document, a line at the top level of the object where a member name must
/// come (not after a `:`) can only start with `"` or `}`. A line that starts with anything else, such as
/// the next JSON Lines record, ends the broken document there (reported as ``InputRecord/interrupted(lines:by:)``)
/// and is read again as a record of its own. Valid JSON never meets that case, so valid documents read as before.
///
/// Memory stays bounded: a record longer than ``LineReader/maximumLineBytes`` is skipped and reported.
struct RecordReader {
    private var lines: LineReader
    private let maximumBytes: Int
    /// A line read ahead that ended a broken document, to be read again as a record.
    private var pending: InputLine?

    init(source: any ByteSource, maximumBytes: Int = LineReader.maximumLineBytes) {
        self.lines = LineReader(source: source, maximumLineBytes: maximumBytes)
        self.maximumBytes = maximumBytes
    }

    mutating func next() throws -> InputRecord? {
        guard let first = try nextLine() else { return nil }
        switch first {
        case .tooLong(let number, let byteCount):
            return .tooLong(lines: number...number, byteCount: byteCount)
        case .line(let number, var bytes):
            if number == 1, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
            guard Self.startsDocument(bytes) else { return .record(lines: number...number, bytes: bytes) }
            return try readDocument(startingAt: number, with: bytes)
        }
    }

    private mutating func nextLine() throws -> InputLine? {
        if let line = pending {
            pending = nil
            return line
        }
        return try lines.next()
    }

    /// Reads lines after a lone `{` until the document's braces balance.
    private mutating func readDocument(startingAt start: Int, with firstLine: [UInt8]) throws -> InputRecord {
        var scanner = NestingScanner()
        scanner.scan(firstLine)
        var document = firstLine
        var byteCount = firstLine.count
        var last = start
        while scanner.depth > 0 {
            guard let line = try nextLine() else { return .unterminated(lines: start...last) }
            switch line {
            case .tooLong(let number, let count):
                // The nesting inside the long line is unknown, so the document's end cannot be found: report
                // what was read so far; the lines after it are read as records of their own.
                return .tooLong(lines: start...number, byteCount: byteCount + 1 + count)
            case .line(let number, let bytes):
                if scanner.expectsMemberName, let first = bytes.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }),
                    first != UInt8(ascii: "\""), first != UInt8(ascii: "}")
                {
                    pending = line
                    return .interrupted(lines: start...last, by: number)
                }
                last = number
                scanner.scan(bytes)
                // A JSON string never spans lines: a quote left open is the line's error, not the next line's.
                scanner.endLine()
                byteCount += 1 + bytes.count
                if byteCount <= maximumBytes {
                    document.append(UInt8(ascii: "\n"))
                    document.append(contentsOf: bytes)
                } else {
                    document = []
                }
            }
        }
        if byteCount > maximumBytes { return .tooLong(lines: start...last, byteCount: byteCount) }
        return .record(lines: start...last, bytes: document)
    }

    /// Whether a line holds only `{`, with spaces or tabs around it.
    static func startsDocument(_ line: [UInt8]) -> Bool {
        var braces = 0
        for byte in line {
            switch byte {
            case UInt8(ascii: "{"): braces += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"): continue
            default: return false
            }
        }
        return braces == 1
    }
}

/// Follows the nesting depth of JSON text across lines, ignoring brackets inside strings.
struct NestingScanner {
    private(set) var depth = 0
    private var inString = false
    private var escaped = false
    /// The last byte outside strings that is not white space (a string counts as its quote).
    private var lastSignificant: UInt8 = 0

    /// Whether the text so far stops, in the outermost object, where a member name or its closing `}` must
    /// come next: after the opening `{` or a `,`.
    var expectsMemberName: Bool {
        depth == 1 && !inString && (lastSignificant == UInt8(ascii: "{") || lastSignificant == UInt8(ascii: ","))
    }

    mutating func scan(_ bytes: [UInt8]) {
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): continue
            default: break
            }
            lastSignificant = byte
        }
    }

    /// Ends a line: a string still open there is closed, since JSON strings cannot hold a line break.
    mutating func endLine() {
        inString = false
        escaped = false
    }
}
