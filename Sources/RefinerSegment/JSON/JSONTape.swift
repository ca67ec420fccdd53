/// A JSON document read into a flat list of tokens, one per value and per object member name, in document order.
///
/// The reader of the input path: `SurveyResponse(json:)`, Refiner webhooks and built Segment messages are read
/// through it instead of `JSONDecoder`, which spends most of its time on generic containers, boxing and
/// reference counting. One pass checks the whole document (RFC 8259 syntax, UTF-8, escapes and surrogate pairs,
/// a depth bound) and records where each value is; decoding then walks the tokens, jumps over a container in
/// one step, and turns only the strings it needs into `String`s. Numbers stay text until a decoder asks for
/// one, so integers are read exactly.
///
/// Like Foundation's `JSONDecoder`, the reader skips a UTF-8 byte order mark and accepts one trailing comma
/// before a closing bracket, so every document `JSONDecoder` accepted is still accepted.
struct JSONTape {
    /// The deepest nesting of arrays and objects accepted, as `JSONDecoder`'s.
    static let maximumDepth = 512

    enum Kind: UInt8 {
        case object, array, string, number, `true`, `false`, null
    }

    /// One value, or one member name (a string token right before its value).
    struct Token {
        var kind: Kind
        /// A string with a backslash escape; a number with a fraction or an exponent.
        var isComplex: Bool
        /// The first byte: inside the quotes for a string, the bracket for a container.
        var start: Int
        /// A string's closing quote, a number's or literal's end; for a container, the index of the token after
        /// its last one (so that skipping it is one step).
        var end: Int
    }

    private(set) var tokens: [Token] = []

    /// Reads `bytes` (which must stay alive and unchanged while the tape is used).
    init(bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) {
        tokens.reserveCapacity(bytes.count / 8 + 4)
        try read(bytes)
    }

    // MARK: Reading

    private mutating func read(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            throw JSONSyntaxError("the input is empty", at: 0)
        }
        let count = bytes.count
        var index = 0
        if count >= 3, base[0] == 0xEF, base[1] == 0xBB, base[2] == 0xBF { index = 3 }
        /// Open containers: their token indices.
        var open: [Int] = []
        open.reserveCapacity(8)

        func skipSpace(_ index: inout Int) {
            while index < count {
                switch base[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        skipSpace(&index)
        value: while true {
            // A value is due at `index`.
            guard index < count else { throw JSONSyntaxError("the input ends where a value is due", at: index) }
            let byte = base[index]
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard open.count < Self.maximumDepth else {
                    throw JSONSyntaxError("arrays and objects nest deeper than \(Self.maximumDepth) levels", at: index)
                }
                let isObject = byte == UInt8(ascii: "{")
                open.append(tokens.count)
                tokens.append(Token(kind: isObject ? .object : .array, isComplex: false, start: index, end: 0))
                index += 1
                skipSpace(&index)
                if index < count, base[index] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    tokens[open.removeLast()].end = tokens.count
                    index += 1
                } else {
                    if isObject { try readName(base, count, &index, skipSpace) }
                    continue value
                }
            case UInt8(ascii: "\""):
                try readString(base, count, &index)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try readNumber(base, count, &index)
            case UInt8(ascii: "t"):
                try readLiteral("true", .true, base, count, &index)
            case UInt8(ascii: "f"):
                try readLiteral("false", .false, base, count, &index)
            case UInt8(ascii: "n"):
                try readLiteral("null", .null, base, count, &index)
            default:
                throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
            }
            // After a value: a separator, the end of containers, or the end of the input.
            while true {
                skipSpace(&index)
                guard let container = open.last else {
                    guard index == count else {
                        throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "the end of the input")
                    }
                    return
                }
                let isObject = tokens[container].kind == .object
                let closing = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                guard index < count else {
                    throw JSONSyntaxError("the input ends inside an \(isObject ? "object" : "array")", at: index)
                }
                if base[index] == UInt8(ascii: ",") {
                    index += 1
                    skipSpace(&index)
                    // One trailing comma is accepted, as JSONDecoder does.
                    if index < count, base[index] == closing {
                        tokens[open.removeLast()].end = tokens.count
                        index += 1
                        continue
                    }
                    if isObject { try readName(base, count, &index, skipSpace) }
                    continue value
                }
                guard base[index] == closing else {
                    throw JSONSyntaxError.unexpected(
                        base, count, at: index, expecting: isObject ? "',' or '}'" : "',' or ']'")
                }
                tokens[open.removeLast()].end = tokens.count
                index += 1
            }
        }
    }

    /// Reads a member name and its colon, and the space after them.
    private mutating func readName(
        _ base: UnsafePointer<UInt8>, _ count: Int, _ index: inout Int, _ skipSpace: (inout Int) -> Void
    ) throws(JSONSyntaxError) {
        guard index < count, base[index] == UInt8(ascii: "\"") else {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a member name")
        }
        try readString(base, count, &index)
        skipSpace(&index)
        guard index < count, base[index] == UInt8(ascii: ":") else {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "':'")
        }
        index += 1
        skipSpace(&index)
    }

    private mutating func readLiteral(
        _ literal: StaticString, _ kind: Kind, _ base: UnsafePointer<UInt8>, _ count: Int, _ index: inout Int
    ) throws(JSONSyntaxError) {
        let length = literal.utf8CodeUnitCount
        guard index + length <= count else {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
        }
        for offset in 0..<length where base[index + offset] != literal.utf8Start[offset] {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
        }
        tokens.append(Token(kind: kind, isComplex: false, start: index, end: index + length))
        index += length
    }

    /// Reads a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func readNumber(
        _ base: UnsafePointer<UInt8>, _ count: Int, _ index: inout Int
    ) throws(JSONSyntaxError) {
        let start = index
        func isDigit(_ at: Int) -> Bool { at < count && base[at] &- UInt8(ascii: "0") < 10 }
        func digits(_ index: inout Int) throws(JSONSyntaxError) {
            guard isDigit(index) else {
                throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a digit")
            }
            repeat { index += 1 } while isDigit(index)
        }
        if base[index] == UInt8(ascii: "-") { index += 1 }
        if index < count, base[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            try digits(&index)
        }
        var isComplex = false
        if index < count, base[index] == UInt8(ascii: ".") {
            isComplex = true
            index += 1
            try digits(&index)
        }
        if index < count, base[index] | 0x20 == UInt8(ascii: "e") {
            isComplex = true
            index += 1
            if index < count, base[index] == UInt8(ascii: "+") || base[index] == UInt8(ascii: "-") { index += 1 }
            try digits(&index)
        }
        tokens.append(Token(kind: .number, isComplex: isComplex, start: start, end: index))
    }

    /// Reads a string from its opening quote, checking escapes, surrogate pairs and UTF-8.
    private mutating func readString(
        _ base: UnsafePointer<UInt8>, _ count: Int, _ index: inout Int
    ) throws(JSONSyntaxError) {
        let start = index + 1
        var at = start
        var hasEscape = false
        while true {
            // Plain ASCII, the common case, eight bytes at a time; the first byte that is not goes below.
            if at + 8 <= count {
                let special = Self.specialBytes(
                    UInt64(littleEndian: UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)))
                if special == 0 {
                    at += 8
                    continue
                }
                at += special.trailingZeroBitCount >> 3
            } else if at >= count {
                throw JSONSyntaxError("the input ends inside a string", at: at)
            }
            let byte = base[at]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                hasEscape = true
                at = try Self.checkEscape(base, count, at)
            } else if byte < 0x20 {
                throw JSONSyntaxError("a control character (U+00\(Self.hex(byte))) is not escaped in a string", at: at)
            } else if byte >= 0x80 {
                at = try UTF8Check.sequenceEnd(base, count, at)
            } else {
                at += 1
            }
        }
        tokens.append(Token(kind: .string, isComplex: hasEscape, start: start, end: at))
        index = at + 1
    }

    /// Checks the escape at `at` (a backslash) and returns the index after it.
    private static func checkEscape(
        _ base: UnsafePointer<UInt8>, _ count: Int, _ at: Int
    ) throws(JSONSyntaxError) -> Int {
        guard at + 1 < count else { throw JSONSyntaxError("the input ends inside a string", at: at + 1) }
        switch base[at + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return at + 2
        case UInt8(ascii: "u"):
            let unit = try hexUnit(base, count, at)
            switch unit {
            case 0xD800...0xDBFF:
                guard at + 12 <= count, base[at + 6] == UInt8(ascii: "\\"), base[at + 7] == UInt8(ascii: "u"),
                    case 0xDC00...0xDFFF = try hexUnit(base, count, at + 6)
                else {
                    throw JSONSyntaxError("a \\u escape of a high surrogate is not followed by a low one", at: at)
                }
                return at + 12
            case 0xDC00...0xDFFF:
                throw JSONSyntaxError("a \\u escape of a low surrogate has no high surrogate before it", at: at)
            default:
                return at + 6
            }
        default:
            throw JSONSyntaxError("'\\\(Character(Unicode.Scalar(base[at + 1])))' is not a JSON escape", at: at)
        }
    }

    /// The four hex digits of the `\u` escape at `at`.
    static func hexUnit(_ base: UnsafePointer<UInt8>, _ count: Int, _ at: Int) throws(JSONSyntaxError) -> UInt16 {
        guard at + 6 <= count else { throw JSONSyntaxError("the input ends inside a \\u escape", at: at) }
        var unit: UInt16 = 0
        for offset in 2..<6 {
            let byte = base[at + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw JSONSyntaxError("a \\u escape needs four hex digits", at: at)
            }
            unit = unit << 4 | UInt16(digit)
        }
        return unit
    }

    /// The high bit set in each of eight bytes (little-endian) that is a quote, a backslash, a control character
    /// or not ASCII (SWAR). Only the lowest flagged byte is exact (a borrow can flag bytes above it), which is
    /// the one the reader looks at.
    @inline(__always)
    private static func specialBytes(_ word: UInt64) -> UInt64 {
        SWAR.bytes(below: 0x20, in: word) | SWAR.bytes(equalTo: 0x22, in: word) | SWAR.bytes(equalTo: 0x5C, in: word)
            | SWAR.nonASCIIBytes(in: word)
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}

/// Why a document is not JSON, and where: the offset of the byte where reading stopped.
struct JSONSyntaxError: Error, Hashable {
    var reason: String
    var offset: Int

    init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// `unexpected 'x' where a value is due`, naming a printable byte or its hex value.
    static func unexpected(
        _ base: UnsafePointer<UInt8>, _ count: Int, at index: Int, expecting: String
    ) -> JSONSyntaxError {
        guard index < count else { return JSONSyntaxError("the input ends where \(expecting) is due", at: index) }
        let byte = base[index]
        let shown =
            (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(JSONTape.hex(byte))"
        return JSONSyntaxError("unexpected \(shown) where \(expecting) is due", at: index)
    }

    /// The words after "not valid JSON": `(unexpected 'x' where a value is due, at byte 12)`.
    var description: String { "not valid JSON (\(reason), at byte \(offset))" }
}

/// UTF-8 well-formedness (Unicode's table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
enum UTF8Check {
    /// The index after the multi-byte sequence that starts at `at`, or an error naming it.
    @inline(__always)
    static func sequenceEnd(_ base: UnsafePointer<UInt8>, _ count: Int, _ at: Int) throws(JSONSyntaxError) -> Int {
        let lead = base[at]
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
            at + offset < count && range.contains(base[at + offset])
        }
        let valid: Bool
        let length: Int
        switch lead {
        case 0xC2...0xDF:
            length = 2
            valid = continuation(1)
        case 0xE0:
            length = 3
            valid = continuation(1, 0xA0...0xBF) && continuation(2)
        case 0xE1...0xEC, 0xEE...0xEF:
            length = 3
            valid = continuation(1) && continuation(2)
        case 0xED:
            length = 3
            valid = continuation(1, 0x80...0x9F) && continuation(2)
        case 0xF0:
            length = 4
            valid = continuation(1, 0x90...0xBF) && continuation(2) && continuation(3)
        case 0xF1...0xF3:
            length = 4
            valid = continuation(1) && continuation(2) && continuation(3)
        case 0xF4:
            length = 4
            valid = continuation(1, 0x80...0x8F) && continuation(2) && continuation(3)
        default:
            length = 1
            valid = false
        }
        guard valid else { throw JSONSyntaxError("invalid UTF-8", at: at) }
        return at + length
    }
}
