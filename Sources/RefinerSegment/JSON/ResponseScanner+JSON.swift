/// The JSON the scanner reads, checked as ``JSONTape`` checks it; anything it does not expect is ``Unusual``.
extension ResponseScanner {
    /// The name of the next member of the object whose `{` was read (the bytes inside its quotes), with its
    /// colon read and its value due, which the caller reads before the next call; nil after the closing brace.
    /// `isFirst` starts true, for the first call.
    @inline(__always)
    mutating func nextMember(_ isFirst: inout Bool) throws(Unusual) -> Range<Int>? {
        skipSpace()
        if isFirst {
            isFirst = false
            if peek() == UInt8(ascii: "}") {
                at += 1
                return nil
            }
        } else {
            switch peek() {
            case UInt8(ascii: ","):
                at += 1
                skipSpace()
            case UInt8(ascii: "}"):
                at += 1
                return nil
            default:
                throw Unusual()
            }
        }
        let name = try stringBytes()
        skipSpace()
        try expect(UInt8(ascii: ":"))
        skipSpace()
        return name
    }

    /// Marks a member seen (`bit` of `seen`); a second one of the same name is unusual.
    @inline(__always)
    func once(_ seen: inout UInt8, _ bit: UInt8) throws(Unusual) {
        guard seen & bit == 0 else { throw Unusual() }
        seen |= bit
    }

    /// The byte at the reading position, 0 at the end (0 is never due anywhere the scanner looks).
    @inline(__always)
    func peek() -> UInt8 { at < count ? base[at] : 0 }

    @inline(__always)
    mutating func expect(_ byte: UInt8) throws(Unusual) {
        guard peek() == byte else { throw Unusual() }
        at += 1
    }

    @inline(__always)
    mutating func skipSpace() {
        while at < count {
            switch base[at] {
            case 0x20, 0x0A, 0x0D, 0x09: at += 1
            default: return
            }
        }
    }

    /// Whether a `null` is due (and then reads it).
    @inline(__always)
    mutating func isNull() throws(Unusual) -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    mutating func literal(_ literal: StaticString) throws(Unusual) {
        let length = literal.utf8CodeUnitCount
        guard at + length <= count, equal(at, literal) else { throw Unusual() }
        at += length
    }

    /// Reads a string (at its opening quote) and returns the range of its bytes inside the quotes, checked
    /// as ``JSONTape`` checks a string; one with an escape is unusual.
    @inline(__always)
    mutating func stringBytes() throws(Unusual) -> Range<Int> {
        guard peek() == UInt8(ascii: "\"") else { throw Unusual() }
        let start = at + 1
        var index = start
        while true {
            // Plain ASCII eight bytes at a time, as the tape reads it.
            if index + 8 <= count {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                let special =
                    SWAR.bytes(below: 0x20, in: word) | SWAR.bytes(equalTo: 0x22, in: word)
                    | SWAR.bytes(equalTo: 0x5C, in: word) | SWAR.nonASCIIBytes(in: word)
                if special == 0 {
                    index += 8
                    continue
                }
                index += special.trailingZeroBitCount >> 3
            } else if index >= count {
                throw Unusual()
            }
            let byte = base[index]
            if byte == UInt8(ascii: "\"") { break }
            if byte >= 0x80 {
                guard let end = try? UTF8Check.sequenceEnd(base, count, index) else { throw Unusual() }
                index = end
            } else if byte == UInt8(ascii: "\\") || byte < 0x20 {
                throw Unusual()
            } else {
                index += 1
            }
        }
        at = index + 1
        return start..<index
    }

    @inline(__always)
    func buffer(_ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    mutating func string() throws(Unusual) -> String {
        String(decoding: buffer(try stringBytes()), as: UTF8.self)
    }

    /// A string, the same `String` as `place` of the last response's when its bytes are the same.
    mutating func string(place: Int) throws(Unusual) -> String {
        let bytes = buffer(try stringBytes())
        guard let repeated else { return String(decoding: bytes, as: UTF8.self) }
        return RepeatedStrings.string(bytes, at: place, in: repeated)
    }

    mutating func optionalString() throws(Unusual) -> String? {
        try isNull() ? nil : string()
    }

    mutating func optionalString(place: Int) throws(Unusual) -> String? {
        try isNull() ? nil : string(place: place)
    }

    /// Whether the bytes of `range` are `name` (ASCII).
    @inline(__always)
    func isName(_ range: Range<Int>, _ name: StaticString) -> Bool {
        range.count == name.utf8CodeUnitCount && equal(range.lowerBound, name)
    }

    /// Whether the bytes at `start` are those of `literal` (which the caller checked fit): two loads of a word
    /// that overlap in the middle, of 8, 4 or 2 bytes as the literal's length allows (a constant once inlined).
    @inline(__always)
    func equal(_ start: Int, _ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        let found = UnsafeRawPointer(base + start)
        let expected = UnsafeRawPointer(literal.utf8Start)
        @inline(__always)
        func same<Word: FixedWidthInteger>(_: Word.Type) -> Bool {
            let last = length - MemoryLayout<Word>.size
            return found.loadUnaligned(as: Word.self) == expected.loadUnaligned(as: Word.self)
                && found.loadUnaligned(fromByteOffset: last, as: Word.self)
                    == expected.loadUnaligned(fromByteOffset: last, as: Word.self)
        }
        switch length {
        case 0: return true
        case 1: return found.load(as: UInt8.self) == expected.load(as: UInt8.self)
        case 2...3: return same(UInt16.self)
        case 4...7: return same(UInt32.self)
        case 8...16: return same(UInt64.self)
        default: return sameBytes(found, expected, length)
        }
    }

    /// Whether `count` bytes at `left` and `right` are the same.
    func sameBytes(_ left: UnsafeRawPointer, _ right: UnsafeRawPointer, _ count: Int) -> Bool {
        for offset in 0..<count
        where left.load(fromByteOffset: offset, as: UInt8.self) != right.load(fromByteOffset: offset, as: UInt8.self) {
            return false
        }
        return true
    }

    /// A number, as ``JSONTape`` reads it (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`) and
    /// ``AnswerValue`` decodes it: an integer when it is integral and fits 64 bits, else a `Double`.
    mutating func number() throws(Unusual) -> AnswerValue {
        let start = at
        if peek() == UInt8(ascii: "-") { at += 1 }
        if peek() == UInt8(ascii: "0") {
            at += 1
        } else {
            try digits()
        }
        var isComplex = false
        if peek() == UInt8(ascii: ".") {
            isComplex = true
            at += 1
            try digits()
        }
        if peek() | 0x20 == UInt8(ascii: "e") {
            isComplex = true
            at += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { at += 1 }
            try digits()
        }
        if let integer = JSONReader.integer(base, from: start, to: at, isComplex: isComplex) {
            return .integer(integer)
        }
        guard let decimal = JSONReader.decimal(base, from: start, to: at) else { throw Unusual() }
        return .decimal(decimal)
    }

    @inline(__always)
    mutating func digits() throws(Unusual) {
        guard peek() &- UInt8(ascii: "0") < 10 else { throw Unusual() }
        repeat { at += 1 } while peek() &- UInt8(ascii: "0") < 10
    }
}
