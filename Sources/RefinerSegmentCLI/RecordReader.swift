/// One input record: a line of JSON Lines, or a pretty-printed JSON document that spans several lines.
enum InputRecord {
    /// A record's bytes and the lines it came from.
    case record(lines: ClosedRange<Int>, bytes: [UInt8])
    /// A record longer than ``LineReader/maximumLineBytes``, skipped unread.
    case tooLong(lines: ClosedRange<Int>, byteCount: Int)
    /// A pretty-printed document whose braces never balance before the input ends.
    case unterminated(lines: ClosedRange<Int>)
    /// A pretty-printed document cut short by a line that cannot continue it (see ``RecordReader``); that
    /// line, `by`, is read again as a record of its own.
    case interrupted(lines: ClosedRange<Int>, by: Int)

    /// Where the record is, for messages: `line 3` or `lines 3-40`.
    static func location(_ lines: ClosedRange<Int>) -> String {
        lines.count == 1 ? "line \(lines.lowerBound)" : "lines \(lines.lowerBound)-\(lines.upperBound)"
    }
}

extension InputRecord {
    /// The lines the record spans.
    var lines: ClosedRange<Int> {
        switch self {
        case .record(let lines, _), .tooLong(let lines, _), .unterminated(let lines), .interrupted(let lines, _):
            return lines
        }
    }

    /// Where an unreadable record is and why, for a `skipped:` report; `nil` for a record to read.
    var problem: (location: String, reason: String)? {
        switch self {
        case .record:
            return nil
        case .tooLong(let lines, let byteCount):
            return (Self.location(lines), "\(byteCount) bytes, longer than \(LineReader.maximumLineBytes)")
        case .unterminated(let lines):
            return (
                Self.location(lines), "the JSON document that starts with a lone '{' ends before its braces balance"
            )
        case .interrupted(let lines, let next):
            return (
                Self.location(lines),
                "the JSON document that starts with a lone '{' is cut short by line \(next), which starts a new record"
            )
        }
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
/// records after it: inside a document, a line at the top level of the object can only start with what
/// may come next there (`"` or `}` where a member name is due, `:` after a name, `,` or `}` after a value).
/// A line that starts with anything else, such as the next JSON Lines record, ends the broken document there
/// (reported as ``InputRecord/interrupted(lines:by:)``) and is read again as a record of its own. Valid JSON
/// never meets that case, so valid documents read as before.
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

    /// How many bytes of the input have been read into records.
    var bytesConsumed: Int { lines.bytesConsumed }
    /// The size of the whole input, when known.
    var byteCount: Int? { lines.byteCount }
    /// The file the input is, when it is one.
    var fileIdentity: FileIdentity? { lines.fileIdentity }

    /// Whether the next record's first line is there without waiting for input. (A pretty-printed document
    /// may still wait for its later lines; `send` only needs to know whether input has stopped coming.)
    func canReadWithoutWaiting() -> Bool {
        pending != nil || lines.canReadWithoutWaiting()
    }

    /// Whether reading the next record is about to wait for input (see ``LineReader/mayWait()``).
    func mayWait() -> Bool {
        pending == nil && lines.mayWait()
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
                if let first = bytes.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }),
                    !scanner.canContinue(with: first)
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

/// Follows the nesting depth of JSON text across lines, ignoring brackets inside strings, and what the
/// outermost object expects next, so that a line that cannot continue it is noticed.
struct NestingScanner {
    /// What may come next in the outermost object.
    private enum Expectation {
        case name, colon, value, separator
    }

    private(set) var depth = 0
    private var inString = false
    private var escaped = false
    private var expected = Expectation.value
    /// Whether the string being read is a member name of the outermost object.
    private var stringIsName = false

    /// Whether a line that starts (after spaces and tabs) with `byte` can continue the outermost object:
    /// a member name or `}` after `{` or `,`, a `:` after a name, a `,` or `}` after a value. Anything can
    /// start a value, and nested values are not looked into.
    func canContinue(with byte: UInt8) -> Bool {
        guard depth == 1, !inString else { return true }
        switch expected {
        case .name: return byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "}")
        case .colon: return byte == UInt8(ascii: ":")
        case .value: return true
        case .separator: return byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}")
        }
    }

    mutating func scan(_ bytes: [UInt8]) {
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    closeString()
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                stringIsName = depth == 1 && expected == .name
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth == 1 { expected = .name }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 1 { expected = .separator }
            case UInt8(ascii: ":") where depth == 1: expected = .value
            case UInt8(ascii: ",") where depth == 1: expected = .name
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): break
            default: if depth == 1 { expected = .separator }  // inside a number, `true`, `false` or `null`
            }
        }
    }

    /// Ends a line: a string still open there is closed, since JSON strings cannot hold a line break.
    mutating func endLine() {
        if inString { closeString() }
        escaped = false
    }

    private mutating func closeString() {
        inString = false
        if depth == 1 { expected = stringIsName ? .colon : .separator }
    }
}
