#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON writer for Segment messages: RFC 8259 escaping, integers as integers, keys in the order written.
/// U+2028, U+2029 and U+0085 are written escaped, so that no line splitter breaks a JSON Lines record.
///
/// Hand-written rather than `JSONEncoder` because messages are built on every survey completion and in
/// bulk backfills. It writes into a buffer of its own (no uniqueness or bounds checks per byte, as an
/// `Array` append would make) and hands the result out as one array. Noncopyable: the buffer has one owner.
struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Whether the next member or element needs a comma before it.
    private var needsComma = false

    /// Whether the buffer is the thread's scratch buffer, to be given back (``ScratchBuffer``).
    private var isScratch: Bool

    init(capacity: Int = 512) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
        isScratch = false
    }

    /// A writer in the calling thread's scratch buffer of ``ScratchBuffer/capacity`` bytes, given back to the
    /// thread when the writer ends (unless it grew): for writing what is copied out, once per response.
    init(threadScratch: Void) {
        capacity = ScratchBuffer.capacity
        if let scratch = ScratchBuffer.take() {
            base = scratch
            isScratch = true
        } else {
            base = .allocate(capacity: capacity)
            isScratch = false
        }
    }

    deinit {
        if isScratch {
            ScratchBuffer.giveBack(base)
        } else {
            base.deallocate()
        }
    }

    /// What has been written, as UTF-8 bytes.
    var bytes: [UInt8] {
        [UInt8](UnsafeBufferPointer(start: base, count: count))
    }

    /// The bytes written in `range` (within what was written).
    func bytes(in range: Range<Int>) -> [UInt8] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "a range of what was written")
        return [UInt8](UnsafeBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// The bytes written from `start` on.
    func bytes(from start: Int) -> [UInt8] {
        bytes(in: start..<count)
    }

    /// Forgets what was written, keeping the buffer.
    mutating func removeAll() {
        count = 0
        needsComma = false
    }

    /// Forgets what was written after the first `length` bytes, keeping those and the buffer; what follows
    /// starts without a comma.
    mutating func removeAll(keepingFirst length: Int) {
        precondition(length >= 0 && length <= count, "a length within what was written")
        count = length
        needsComma = false
    }

    /// The number of bytes written so far.
    var byteCount: Int { count }

    mutating func beginObject() {
        separate()
        append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes `"key":`; the value must follow.
    @inline(__always)
    mutating func key(_ key: String) {
        separate()
        appendQuoted(key)
        append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes `"key":` for a key known to need no escaping (a trait key the normalizer made: `[a-z0-9_]`),
    /// copying its bytes without a scan.
    @inline(__always)
    mutating func plainKey(_ key: String) {
        assert(key.utf8.allSatisfy(Self.isPlainKeyByte), "a plain key needs escaping")
        let done: Void? = key.utf8.withContiguousStorageIfAvailable { utf8 in
            reserveMember(utf8.count + 3)
            plainKey(reserved: utf8)
        }
        if done == nil { self.key(key) }
    }

    /// Makes room for `extra` more bytes: before strings are read for writing with the `reserved` methods, so
    /// that nothing between reading them and writing them can free memory (the compiler then borrows them
    /// rather than retaining them).
    @inline(__always)
    mutating func reserveMember(_ extra: Int) {
        reserve(extra + 1)
    }

    /// ``plainKey(_:)`` with room reserved by ``reserveMember(_:)`` for a comma and `key.utf8.count + 3` bytes;
    /// `false`, having written nothing, for a key without contiguous bytes.
    @inline(__always)
    mutating func plainKey(reserved key: borrowing String) -> Bool {
        let done: Void? = key.utf8.withContiguousStorageIfAvailable { plainKey(reserved: $0) }
        return done != nil
    }

    /// ``plainKey(reserved:)`` of a key's UTF-8 bytes (kept apart from its string: reading a string's bytes
    /// through a pointer to it retained and released the string).
    @inline(__always)
    mutating func plainKey(reserved utf8: UnsafeBufferPointer<UInt8>) {
        if needsComma {
            base[count] = UInt8(ascii: ",")
            count += 1
        }
        let length = utf8.count
        base[count] = UInt8(ascii: "\"")
        if let source = utf8.baseAddress { Self.copy(source, count: length, to: base + count + 1) }
        count += length + 1
        base[count] = UInt8(ascii: "\"")
        base[count + 1] = UInt8(ascii: ":")
        count += 2
        needsComma = false
    }

    /// A string value that needs no escaping, with room reserved by ``reserveMember(_:)`` for a comma, its
    /// bytes, its quotes and a word of slack; `false`, having written nothing, when it needs escaping (or has
    /// no contiguous bytes).
    @inline(__always)
    mutating func string(reserved text: borrowing String) -> Bool {
        let done: Bool? = text.utf8.withContiguousStorageIfAvailable { utf8 in
            let start = count
            let comma = needsComma
            if needsComma {
                base[count] = UInt8(ascii: ",")
                count += 1
            }
            base[count] = UInt8(ascii: "\"")
            count += 1
            guard appendPlainContents(reserved: utf8) else {
                count = start
                needsComma = comma
                return false
            }
            base[count] = UInt8(ascii: "\"")
            count += 1
            needsComma = true
            return true
        }
        return done ?? false
    }

    /// Copies a short run of bytes (a key) eight at a time, the last word overlapping the one before: no call
    /// to `memcpy` for a few dozen bytes.
    @inline(__always)
    private static func copy(_ source: UnsafePointer<UInt8>, count length: Int, to target: UnsafeMutablePointer<UInt8>)
    {
        guard length >= 8 else {
            target.update(from: source, count: length)
            return
        }
        let input = UnsafeRawPointer(source)
        let output = UnsafeMutableRawPointer(target)
        var offset = 0
        while offset + 8 < length {
            output.storeBytes(
                of: input.loadUnaligned(fromByteOffset: offset, as: UInt64.self), toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        output.storeBytes(
            of: input.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self), toByteOffset: length - 8,
            as: UInt64.self)
    }

    /// Whether a byte may be in a key that ``plainKey(_:)`` writes: what the normalizer's keys are made of.
    static func isPlainKeyByte(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "a") < 26 || byte &- UInt8(ascii: "0") < 10 || byte == UInt8(ascii: "_")
    }

    /// Writes `"key":` for a key known to need no escaping (a static ASCII name). Inlined, so that the
    /// name's length and bytes are constants at the call.
    @inline(__always)
    mutating func rawKey(_ key: StaticString) {
        separate()
        reserve(key.utf8CodeUnitCount + 3)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: key.utf8Start, count: key.utf8CodeUnitCount)
        count += key.utf8CodeUnitCount + 1
        base[count] = UInt8(ascii: "\"")
        base[count + 1] = UInt8(ascii: ":")
        count += 2
        needsComma = false
    }

    @inline(__always)
    mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    mutating func integer(_ value: Int64) {
        separate()
        appendInteger(value)
        needsComma = true
    }

    /// Writes a finite double in the shortest form that reads back to the same value.
    mutating func decimal(_ value: Double) {
        precondition(value.isFinite, "non-finite numbers are rejected before encoding")
        separate()
        var text = value.description
        text.withUTF8 { append($0) }
        needsComma = true
    }

    mutating func boolean(_ value: Bool) {
        separate()
        if value { append("true") } else { append("false") }
        needsComma = true
    }

    mutating func null() {
        separate()
        append("null")
        needsComma = true
    }

    /// Writes a date as an ISO-8601 string with milliseconds; the date must be representable.
    mutating func date(_ value: Date) {
        separate()
        reserve(Timestamp.byteCount + 2)
        base[count] = UInt8(ascii: "\"")
        Timestamp.write(value, to: base + count + 1)
        base[count + Timestamp.byteCount + 1] = UInt8(ascii: "\"")
        count += Timestamp.byteCount + 2
        needsComma = true
    }

    /// Writes an answer value. Decimals must be finite and dates representable (the builder checks first).
    @inline(__always)
    mutating func value(_ value: AnswerValue) {
        switch value {
        case .string(let string): self.string(string)
        case .integer(let integer): self.integer(integer)
        case .decimal(let decimal): self.decimal(decimal)
        case .boolean(let boolean): self.boolean(boolean)
        case .date(let date): self.date(date)
        case .strings(let strings):
            beginArray()
            for string in strings { self.string(string) }
            endArray()
        }
    }

    /// Appends members already encoded by another writer (`"a":1,"b":2`), inside an object.
    mutating func members(_ json: [UInt8]) {
        guard !json.isEmpty else { return }
        separate()
        json.withUnsafeBufferPointer { append($0) }
        needsComma = true
    }

    /// Appends members already encoded by another writer, `json[range]`, inside an object.
    mutating func members(_ json: [UInt8], _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        separate()
        json.withUnsafeBufferPointer { append(UnsafeBufferPointer(rebasing: $0[range])) }
        needsComma = true
    }

    /// Appends members this writer wrote earlier, at `range` (before what is written now), inside an object.
    mutating func members(copyingOwn range: Range<Int>) {
        guard !range.isEmpty else { return }
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "a range of what was written")
        separate()
        reserve(range.count)
        // After `reserve`, which may move the buffer; the ranges do not overlap.
        (base + count).update(from: base + range.lowerBound, count: range.count)
        count += range.count
        needsComma = true
    }

    /// Starts a new run of members with no comma before its first: for writing two runs of members into one
    /// buffer, each to be appended on its own with ``members(_:_:)``.
    mutating func startMembers() {
        needsComma = false
    }

    /// Appends bytes that close what is open (brackets, and members before them), with no comma first.
    mutating func rawClosing(_ json: [UInt8]) {
        json.withUnsafeBufferPointer { append($0) }
        needsComma = true
    }

    /// Appends bytes that are already a complete JSON value.
    mutating func raw(_ json: [UInt8]) {
        separate()
        json.withUnsafeBufferPointer { append($0) }
        needsComma = true
    }

    @inline(__always)
    private mutating func separate() {
        if needsComma { append(UInt8(ascii: ",")) }
    }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(toAtLeast: count + extra) }
    }

    private mutating func grow(toAtLeast needed: Int) {
        let newCapacity = max(capacity * 2, needed)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        if isScratch {
            ScratchBuffer.giveBack(base)
            isScratch = false
        } else {
            base.deallocate()
        }
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    private mutating func append(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let source = buffer.baseAddress, !buffer.isEmpty else { return }
        reserve(buffer.count)
        (base + count).update(from: source, count: buffer.count)
        count += buffer.count
    }

    @inline(__always)
    private mutating func append(_ text: StaticString) {
        reserve(text.utf8CodeUnitCount)
        (base + count).update(from: text.utf8Start, count: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    @inline(__always)
    private mutating func appendQuoted(_ string: String) {
        // A native string lends its bytes without a copy or a retain; any other is made native first.
        if let done = string.utf8.withContiguousStorageIfAvailable({ appendQuoted(utf8: $0) }) { return done }
        var string = string
        string.withUTF8 { appendQuoted(utf8: $0) }
    }

    private mutating func appendQuoted(utf8: UnsafeBufferPointer<UInt8>) {
        // Room for the string, its quotes and a word of slack, so that the fast path stores whole words.
        reserve(utf8.count + 2 + 8)
        base[count] = UInt8(ascii: "\"")
        count += 1
        appendContents(reserved: utf8)
        base[count] = UInt8(ascii: "\"")
        count += 1
    }

    /// Opens a string whose contents follow in pieces (``stringContents(_:)``, ``rawStringContents(_:)``),
    /// to be closed with ``closeString()``.
    mutating func openString() {
        separate()
        append(UInt8(ascii: "\""))
    }

    /// Writes `string` escaped, without quotes, inside a string opened with ``openString()``.
    @inline(__always)
    mutating func stringContents(_ string: String) {
        if let done: Void = string.utf8.withContiguousStorageIfAvailable({ utf8 in
            reserve(utf8.count + 1 + 8)
            appendContents(reserved: utf8)
        }) {
            return done
        }
        var string = string
        string.withUTF8 { utf8 in
            reserve(utf8.count + 1 + 8)
            appendContents(reserved: utf8)
        }
    }

    /// Writes ASCII text that needs no escaping, without quotes, inside a string opened with ``openString()``.
    @inline(__always)
    mutating func rawStringContents(_ text: StaticString) {
        append(text)
    }

    /// Closes a string opened with ``openString()``.
    mutating func closeString() {
        append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Writes a string value known to need no escaping (a static ASCII name).
    @inline(__always)
    mutating func rawString(_ text: StaticString) {
        separate()
        reserve(text.utf8CodeUnitCount + 2)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: text.utf8Start, count: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount + 1
        base[count] = UInt8(ascii: "\"")
        count += 1
        needsComma = true
    }

    /// The escaped bytes of `utf8`, without quotes, with room reserved for them, a word of slack and one more
    /// byte (the closing quote).
    @inline(__always)
    private mutating func appendContents(reserved utf8: UnsafeBufferPointer<UInt8>) {
        let length = utf8.count
        guard let source = utf8.baseAddress, length > 0 else { return }
        // The common case needs no escaping: eight bytes checked and copied at a time, the last (short) word
        // padded with spaces or overlapping the one before, so that no byte is looked at alone.
        let output = UnsafeMutableRawPointer(base + count)
        let input = UnsafeRawPointer(source)
        var index = 0
        while index + 8 <= length {
            let word = input.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if Self.needsEscape(word) { break }
            output.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        if index + 8 > length, index < length {
            let (word, offset) = Self.lastWord(input, length: length)
            if !Self.needsEscape(word) {
                output.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
                index = length
            }
        }
        count += index
        if index < length { appendEscaping(source, from: index, length: length) }
    }

    /// The last eight bytes of a string of `length` bytes at `input` and where they start: the last word
    /// itself (overlapping the words before it) when there are eight or more, else the string's bytes
    /// gathered into a word padded with spaces (which need no escape), with no call to `memcpy`.
    @inline(__always)
    private static func lastWord(_ input: UnsafeRawPointer, length: Int) -> (word: UInt64, offset: Int) {
        if length >= 8 { return (input.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self), length - 8) }
        var gathered: UInt64
        if length >= 4 {
            // Two four-byte loads, the second overlapping the first (the same bytes, so OR keeps them).
            let low = UInt64(input.loadUnaligned(as: UInt32.self))
            let high = UInt64(input.loadUnaligned(fromByteOffset: length - 4, as: UInt32.self))
            gathered = low | high << UInt64(8 * (length - 4))
        } else {
            gathered = UInt64(input.load(as: UInt8.self))
            if length > 1 { gathered |= UInt64(input.load(fromByteOffset: 1, as: UInt8.self)) << 8 }
            if length > 2 { gathered |= UInt64(input.load(fromByteOffset: 2, as: UInt8.self)) << 16 }
        }
        let above: UInt64 = ~0 << UInt64(8 * length)
        return (gathered & ~above | 0x2020_2020_2020_2020 & above, 0)
    }

    /// The bytes of `utf8` when none needs escaping, with room reserved as for
    /// ``appendContents(reserved:)``; `false`, with ``count`` unchanged, when one does. Calls nothing.
    @inline(__always)
    private mutating func appendPlainContents(reserved utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        let length = utf8.count
        guard let source = utf8.baseAddress, length > 0 else { return true }
        let output = UnsafeMutableRawPointer(base + count)
        let input = UnsafeRawPointer(source)
        var index = 0
        while index + 8 <= length {
            let word = input.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            if Self.needsEscape(word) { return false }
            output.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        if index < length {
            let (word, offset) = Self.lastWord(input, length: length)
            if Self.needsEscape(word) { return false }
            output.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
        }
        count += length
        return true
    }

    /// The slow path of ``appendQuoted(utf8:)``: bytes from `start` on, escaping what needs it; reserves room
    /// for the closing quote.
    private mutating func appendEscaping(_ source: UnsafePointer<UInt8>, from start: Int, length: Int) {
        var runStart = start
        var index = start
        while index < length {
            // Most text needs no escaping: skip eight clean bytes at a time.
            if index + 8 <= length,
                !Self.needsEscape(UnsafeRawPointer(source + index).loadUnaligned(as: UInt64.self))
            {
                index += 8
                continue
            }
            let byte = source[index]
            if byte == 0xE2 || byte == 0xC2 {
                // U+2028 and U+2029 (E2 80 A8/A9) and U+0085 (C2 85) are line breaks to some line splitters
                // (Python's `splitlines`, JavaScript), so a JSON Lines record keeps them escaped.
                let escape: StaticString?
                let width: Int
                if byte == 0xE2, index + 2 < length, source[index + 1] == 0x80,
                    source[index + 2] == 0xA8 || source[index + 2] == 0xA9
                {
                    escape = source[index + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                    width = 3
                } else if byte == 0xC2, index + 1 < length, source[index + 1] == 0x85 {
                    escape = "\\u0085"
                    width = 2
                } else {
                    escape = nil
                    width = 1
                }
                if let escape {
                    append(UnsafeBufferPointer(start: source + runStart, count: index - runStart))
                    append(escape)
                    runStart = index + width
                }
                index += width
                continue
            }
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            append(UnsafeBufferPointer(start: source + runStart, count: index - runStart))
            index += 1
            runStart = index
            appendEscaped(byte)
        }
        append(UnsafeBufferPointer(start: source + runStart, count: length - runStart))
        reserve(1)
    }

    /// Whether any of eight bytes is a control character, a quote, a backslash, or the lead byte of U+2028,
    /// U+2029 or U+0085 (SWAR: a byte is flagged when it is below 0x20, or equal to 0x22, 0x5C, 0xE2 or 0xC2;
    /// other bytes of 0x80 and above never are). A word of ASCII, the common case (every trait key), skips
    /// the two tests for lead bytes.
    @inline(__always)
    private static func needsEscape(_ word: UInt64) -> Bool {
        let ascii =
            SWAR.bytes(below: 0x20, in: word) | SWAR.bytes(equalTo: 0x22, in: word)
            | SWAR.bytes(equalTo: 0x5C, in: word)
        guard SWAR.nonASCIIBytes(in: word) != 0 else { return ascii != 0 }
        return (ascii | SWAR.bytes(equalTo: 0xE2, in: word) | SWAR.bytes(equalTo: 0xC2, in: word)) != 0
    }

    private mutating func appendEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): append("\\\"")
        case UInt8(ascii: "\\"): append("\\\\")
        case 0x0A: append("\\n")
        case 0x0D: append("\\r")
        case 0x09: append("\\t")
        case 0x08: append("\\b")
        case 0x0C: append("\\f")
        default:
            let hex: StaticString = "0123456789abcdef"
            append("\\u00")
            append(hex.utf8Start[Int(byte >> 4)])
            append(hex.utf8Start[Int(byte & 0x0F)])
        }
    }

    private mutating func appendInteger(_ value: Int64) {
        // At most 20 bytes: a sign and 19 digits.
        reserve(20)
        if value < 0 {
            base[count] = UInt8(ascii: "-")
            count += 1
        }
        // The magnitude as UInt64, so Int64.min has no overflow.
        var magnitude = value.magnitude
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        var position = count + digits - 1
        repeat {
            base[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
            position -= 1
        } while magnitude > 0
        count += digits
    }
}
