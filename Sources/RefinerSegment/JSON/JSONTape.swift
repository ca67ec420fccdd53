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

    /// The tokens, in document order. A plain buffer, not an array: appending a token is then a store and an
    /// increment (no uniqueness and capacity checks through the array), and reading one has no bounds check
    /// (indices come from the tape itself: a container's `end`, the token after a value).
    private let storage: Storage
    /// The storage's tokens once read (kept here, so that reading a token does not go through the class),
    /// valid while the tape is.
    let tokens: UnsafePointer<Token>

    /// The number of tokens.
    let count: Int

    /// The token at `index` (less than ``count``).
    @inline(__always)
    subscript(index: Int) -> Token { tokens[index] }

    /// Reads `bytes` (which must stay alive and unchanged while the tape is used).
    init(bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) {
        // About one token per eight bytes in typical documents; the buffer grows when a document has more.
        storage = Storage(capacity: bytes.count / 8 + 16)
        try Self.read(bytes, into: storage)
        tokens = UnsafePointer(storage.tokens)
        count = storage.count
    }

    /// The buffer of tokens; ``JSONTape`` is its only user, and a tape is not shared between threads.
    private final class Storage {
        var tokens: UnsafeMutablePointer<Token>
        var capacity: Int
        var count = 0

        init(capacity: Int) {
            tokens = .allocate(capacity: capacity)
            self.capacity = capacity
        }

        /// Doubles the capacity, keeping the first `count` tokens.
        func grow(keeping count: Int) {
            let larger = UnsafeMutablePointer<Token>.allocate(capacity: capacity * 2)
            larger.moveInitialize(from: tokens, count: count)
            tokens.deallocate()
            tokens = larger
            capacity *= 2
        }

        deinit { tokens.deallocate() }  // `Token` is a trivial type: nothing to deinitialize
    }

    // MARK: Reading

    private static func read(_ bytes: UnsafeBufferPointer<UInt8>, into storage: Storage) throws(JSONSyntaxError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            throw JSONSyntaxError("the input is empty", at: 0)
        }
        var reader = Reader(base: base, count: bytes.count, storage: storage)
        defer { storage.count = reader.written }
        try reader.read()
    }

    /// The state of one read, in a struct of its own: its methods change it in place, where closures over
    /// local variables would box them and check each access for exclusivity at run time.
    private struct Reader {
        let base: UnsafePointer<UInt8>
        let count: Int
        let storage: Storage
        var tokens: UnsafeMutablePointer<Token>
        var capacity: Int
        var written = 0
        /// The innermost open container's token (-1: none). While a container is open, its token's `end`
        /// holds the container open around it, so the open containers need no stack of their own.
        var open = -1
        var depth = 0

        init(base: UnsafePointer<UInt8>, count: Int, storage: Storage) {
            self.base = base
            self.count = count
            self.storage = storage
            tokens = storage.tokens
            capacity = storage.capacity
        }

        @inline(__always)
        mutating func append(_ kind: Kind, _ isComplex: Bool, _ start: Int, _ end: Int) {
            if written == capacity {
                storage.grow(keeping: written)
                tokens = storage.tokens
                capacity = storage.capacity
            }
            tokens[written] = Token(kind: kind, isComplex: isComplex, start: start, end: end)
            written += 1
        }

        @inline(__always)
        mutating func close() {
            let parent = tokens[open].end
            tokens[open].end = written
            open = parent
            depth -= 1
        }

        @inline(__always)
        func skipSpace(_ index: inout Int) {
            while index < count {
                switch base[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        /// Reads a string from its opening quote at `index`, checking escapes, surrogate pairs and UTF-8.
        @inline(__always)
        mutating func readString(_ index: inout Int) throws(JSONSyntaxError) {
            let start = index + 1
            var at = start
            var hasEscape = false
            while true {
                // Plain ASCII, the common case, eight bytes at a time; the first byte that is not goes below.
                if at + 8 <= count {
                    let special = JSONTape.specialBytes(
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
                    at = try JSONTape.checkEscape(base, count, at)
                } else if byte < 0x20 {
                    throw JSONSyntaxError(
                        "a control character (U+00\(JSONTape.hex(byte))) is not escaped in a string", at: at)
                } else if byte >= 0x80 {
                    at = try UTF8Check.sequenceEnd(base, count, at)
                } else {
                    at += 1
                }
            }
            append(.string, hasEscape, start, at)
            index = at + 1
        }

        /// Reads a member name and its colon, and the space after them.
        @inline(__always)
        mutating func readName(_ index: inout Int) throws(JSONSyntaxError) {
            guard index < count, base[index] == UInt8(ascii: "\"") else {
                throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a member name")
            }
            try readString(&index)
            skipSpace(&index)
            guard index < count, base[index] == UInt8(ascii: ":") else {
                throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "':'")
            }
            index += 1
            skipSpace(&index)
        }

        mutating func read() throws(JSONSyntaxError) {
            var index = 0
            if count >= 3, base[0] == 0xEF, base[1] == 0xBB, base[2] == 0xBF { index = 3 }
            skipSpace(&index)
            value: while true {
                // A value is due at `index`.
                guard index < count else { throw JSONSyntaxError("the input ends where a value is due", at: index) }
                let byte = base[index]
                switch byte {
                case UInt8(ascii: "\""):
                    try readString(&index)
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard depth < JSONTape.maximumDepth else {
                        throw JSONSyntaxError(
                            "arrays and objects nest deeper than \(JSONTape.maximumDepth) levels", at: index)
                    }
                    let isObject = byte == UInt8(ascii: "{")
                    append(isObject ? .object : .array, false, index, open)
                    open = written - 1
                    depth += 1
                    index += 1
                    skipSpace(&index)
                    if index < count, base[index] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        close()
                        index += 1
                    } else {
                        if isObject { try readName(&index) }
                        continue value
                    }
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    let (isComplex, end) = try JSONTape.readNumber(base, count, index)
                    append(.number, isComplex, index, end)
                    index = end
                case UInt8(ascii: "t"):
                    try JSONTape.checkLiteral("true", base, count, index)
                    append(.true, false, index, index + 4)
                    index += 4
                case UInt8(ascii: "f"):
                    try JSONTape.checkLiteral("false", base, count, index)
                    append(.false, false, index, index + 5)
                    index += 5
                case UInt8(ascii: "n"):
                    try JSONTape.checkLiteral("null", base, count, index)
                    append(.null, false, index, index + 4)
                    index += 4
                default:
                    throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
                }
                // After a value: a separator, the end of containers, or the end of the input.
                while true {
                    skipSpace(&index)
                    guard open >= 0 else {
                        guard index == count else {
                            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "the end of the input")
                        }
                        return
                    }
                    let isObject = tokens[open].kind == .object
                    let closing = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
                    guard index < count else {
                        throw JSONSyntaxError("the input ends inside an \(isObject ? "object" : "array")", at: index)
                    }
                    if base[index] == UInt8(ascii: ",") {
                        index += 1
                        skipSpace(&index)
                        // One trailing comma is accepted, as JSONDecoder does.
                        if index < count, base[index] == closing {
                            close()
                            index += 1
                            continue
                        }
                        if isObject { try readName(&index) }
                        continue value
                    }
                    guard base[index] == closing else {
                        throw JSONSyntaxError.unexpected(
                            base, count, at: index, expecting: isObject ? "',' or '}'" : "',' or ']'")
                    }
                    close()
                    index += 1
                }
            }
        }
    }

    /// Checks the literal at `index`.
    private static func checkLiteral(
        _ literal: StaticString, _ base: UnsafePointer<UInt8>, _ count: Int, _ index: Int
    ) throws(JSONSyntaxError) {
        let length = literal.utf8CodeUnitCount
        guard index + length <= count else {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
        }
        for offset in 0..<length where base[index + offset] != literal.utf8Start[offset] {
            throw JSONSyntaxError.unexpected(base, count, at: index, expecting: "a value")
        }
    }

    /// Reads a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; whether it has a fraction or
    /// an exponent, and its end.
    private static func readNumber(
        _ base: UnsafePointer<UInt8>, _ count: Int, _ start: Int
    ) throws(JSONSyntaxError) -> (isComplex: Bool, end: Int) {
        var index = start
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
        return (isComplex, index)
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
