#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Typed access to a document read into a ``JSONTape``: the decoders of the input shapes are written on it.
///
/// Its errors are the ones `Codable` decoding through `JSONDecoder` gives for the same input (a missing field,
/// a `null` where a value is due, a wrong type, an invalid value, each with its path), so that the detail of a
/// ``RefinerSegmentError`` reads as before; syntax errors also say where the document stopped being JSON.
struct JSONReader {
    // Plain pointers only, so that copying a reader (into every decoder and closure) retains nothing: the
    // tape and the repeated strings stay alive for the call of `withDocument` that made the reader.
    let base: UnsafePointer<UInt8>
    /// The tape's tokens.
    let tokens: UnsafePointer<JSONTape.Token>
    /// The strings of ``RepeatedStrings`` to reuse where they repeat (see ``string(_:place:)``); nil: none.
    let repeated: UnsafeMutablePointer<String>?

    /// Reads `bytes` and passes the reader, whose value at token 0 is the document, to `body`.
    static func withDocument<Result>(
        _ bytes: some Collection<UInt8>, _ body: (JSONReader) throws(JSONDecodingError) -> Result
    ) throws(JSONDecodingError) -> Result {
        func read(_ buffer: UnsafeBufferPointer<UInt8>) -> Swift.Result<Result, JSONDecodingError> {
            do throws(JSONDecodingError) {
                return .success(try withDocument(buffer: buffer, body))
            } catch {
                return .failure(error)
            }
        }
        let result =
            bytes.withContiguousStorageIfAvailable(read)
            ?? Array(bytes).withUnsafeBufferPointer(read)
        return try result.get()
    }

    /// Reads `buffer` (alive and unchanged during the call) and passes the reader to `body`.
    static func withDocument<Result>(
        buffer: UnsafeBufferPointer<UInt8>, repeated: RepeatedStrings? = nil,
        _ body: (JSONReader) throws(JSONDecodingError) -> Result
    ) throws(JSONDecodingError) -> Result {
        let tape: JSONTape
        do {
            tape = try JSONTape(bytes: buffer)
        } catch {
            throw JSONDecodingError(.syntax(error))
        }
        // The tape is not empty and its bytes have a base address: an empty input is a syntax error.
        return try withExtendedLifetime((tape, repeated)) { () throws(JSONDecodingError) in
            try body(JSONReader(base: buffer.baseAddress!, tokens: tape.tokens, repeated: repeated?.strings))
        }
    }

    /// The document itself.
    static let root = 0

    func kind(_ index: Int) -> JSONTape.Kind { tokens[index].kind }

    /// The index of the token after the value at `index`.
    func after(_ index: Int) -> Int {
        let token = tokens[index]
        switch token.kind {
        case .object, .array: return token.end
        default: return index + 1
        }
    }

    // MARK: Objects and arrays

    /// The value of the member `name` of the object at `object` (the first, if the name repeats, as
    /// `JSONDecoder` does), or `nil`.
    @inline(__always)
    func member(_ name: StaticString, of object: Int) -> Int? {
        let end = tokens[object].end
        var index = object + 1
        while index < end {
            if isName(index, name) { return index + 1 }
            index = after(index + 1)
        }
        return nil
    }

    /// Calls `body` with each member's name token and value index, in document order.
    func forEachMember(
        of object: Int, _ body: (_ name: Int, _ value: Int) throws(JSONDecodingError) -> Void
    ) throws(JSONDecodingError) {
        let end = tokens[object].end
        var index = object + 1
        while index < end {
            try body(index, index + 1)
            index = after(index + 1)
        }
    }

    /// Calls `body` with each element's offset and value index, in order.
    func forEachElement(
        of array: Int, _ body: (_ offset: Int, _ value: Int) throws(JSONDecodingError) -> Void
    ) throws(JSONDecodingError) {
        let end = tokens[array].end
        var index = array + 1
        var offset = 0
        while index < end {
            try body(offset, index)
            index = after(index)
            offset += 1
        }
    }

    /// The number of elements of the array at `array`.
    func elementCount(of array: Int) -> Int {
        var count = 0
        var index = array + 1
        let end = tokens[array].end
        while index < end {
            index = after(index)
            count += 1
        }
        return count
    }

    /// Whether the string token at `index` is `name` (an ASCII name). Inlined, so that the name's length and
    /// bytes are constants.
    @inline(__always)
    private func isName(_ index: Int, _ name: StaticString) -> Bool {
        let token = tokens[index]
        let length = name.utf8CodeUnitCount
        if token.isComplex { return isEscapedName(index, name) }
        guard token.end - token.start == length else { return false }
        let bytes = UnsafeRawPointer(base + token.start)
        let expected = UnsafeRawPointer(name.utf8Start)
        var offset = 0
        while offset + 8 <= length {
            if bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                != expected.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            {
                return false
            }
            offset += 8
        }
        while offset < length {
            if bytes.load(fromByteOffset: offset, as: UInt8.self)
                != expected.load(fromByteOffset: offset, as: UInt8.self)
            {
                return false
            }
            offset += 1
        }
        return true
    }

    /// Whether the string at `index` is `literal` (ASCII), compared as bytes: no `String` is made unless the
    /// string has escapes.
    @inline(__always)
    func isString(_ index: Int, _ literal: StaticString) -> Bool {
        isName(index, literal)
    }

    /// The string at `index` read as a date (``Timestamp``), without making a `String` of it unless it has
    /// escapes; nil when it is not a date.
    func date(_ index: Int) -> Date? {
        let token = tokens[index]
        guard !token.isComplex else { return Timestamp.date(from: string(index)) }
        return Timestamp.date(fromUTF8: UnsafeBufferPointer(start: base + token.start, count: token.end - token.start))
    }

    /// Whether a name spelled with escapes is `name`, once they are resolved.
    private func isEscapedName(_ index: Int, _ name: StaticString) -> Bool {
        string(index) == name.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Scalars

    /// The string at `index`, its escapes resolved (the tape checked them).
    func string(_ index: Int) -> String {
        let token = tokens[index]
        let count = token.end - token.start
        let source = base + token.start
        guard token.isComplex else {
            return String(decoding: UnsafeBufferPointer(start: source, count: count), as: UTF8.self)
        }
        // Resolving an escape never makes text longer: `\n` is 2 bytes for 1, `\uXXXX` 6 for at most 3, a pair 12
        // for 4.
        return String(unsafeUninitializedCapacity: count) { buffer in
            var written = 0
            var at = 0
            func put(_ byte: UInt8) {
                buffer[written] = byte
                written += 1
            }
            while at < count {
                let byte = source[at]
                guard byte == UInt8(ascii: "\\") else {
                    put(byte)
                    at += 1
                    continue
                }
                let escape = source[at + 1]
                at += 2
                switch escape {
                case UInt8(ascii: "b"): put(0x08)
                case UInt8(ascii: "f"): put(0x0C)
                case UInt8(ascii: "n"): put(0x0A)
                case UInt8(ascii: "r"): put(0x0D)
                case UInt8(ascii: "t"): put(0x09)
                case UInt8(ascii: "u"):
                    var scalar = UInt32((try? JSONTape.hexUnit(source, count, at - 2)) ?? 0xFFFD)
                    at += 4
                    if (0xD800...0xDBFF).contains(scalar) {
                        let low = UInt32((try? JSONTape.hexUnit(source, count, at)) ?? 0xDC00)
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        at += 6
                    }
                    for unit in UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}")! { put(unit) }
                default: put(escape)  // `"`, `\` and `/` stand for themselves
                }
            }
            return written
        }
    }

    /// The string at `index`, the same `String` as `place` of the last document's when its bytes are the same
    /// and the reader has ``repeated`` strings (see ``RepeatedStrings``).
    @inline(__always)
    func string(_ index: Int, place: Int) -> String {
        let token = tokens[index]
        guard let repeated, !token.isComplex else { return string(index) }
        return RepeatedStrings.string(
            UnsafeBufferPointer(start: base + token.start, count: token.end - token.start), at: place, in: repeated)
    }

    /// The number at `index` as an integer, when its value is integral and fits 64 bits: exactly, from its
    /// digits (`10`, `10.0` and `1e1` alike; `9007199254740993` stays itself, which a `Double` cannot hold).
    func integer(_ index: Int) -> Int64? {
        let token = tokens[index]
        return Self.integer(base, from: token.start, to: token.end, isComplex: token.isComplex)
    }

    /// The number in `base[start..<end]` (checked JSON number text; `isComplex` when it has a fraction or an
    /// exponent) as an integer, as ``integer(_:)`` reads it: also for ``ResponseScanner``.
    static func integer(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int, isComplex: Bool) -> Int64? {
        var at = start
        let isNegative = base[at] == UInt8(ascii: "-")
        if isNegative { at += 1 }
        var magnitude: UInt64 = 0
        if !isComplex {
            while at < end {
                let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, carry) = times10.addingReportingOverflow(UInt64(base[at] &- UInt8(ascii: "0")))
                guard !overflow, !carry else { return nil }
                magnitude = sum
                at += 1
            }
            return Self.signed(magnitude, isNegative)
        }
        // Significant digits (integer part and fraction) and the power of ten they are scaled by.
        var digits: [UInt8] = []
        var exponent = 0
        var inFraction = false
        while at < end {
            let byte = base[at]
            if byte == UInt8(ascii: ".") {
                inFraction = true
            } else if byte | 0x20 == UInt8(ascii: "e") {
                at += 1
                var isNegativeExponent = false
                if base[at] == UInt8(ascii: "+") || base[at] == UInt8(ascii: "-") {
                    isNegativeExponent = base[at] == UInt8(ascii: "-")
                    at += 1
                }
                var value = 0
                while at < end {
                    value = min(value * 10 + Int(base[at] &- UInt8(ascii: "0")), 1_000_000)
                    at += 1
                }
                exponent += isNegativeExponent ? -value : value
                break
            } else {
                if !(digits.isEmpty && byte == UInt8(ascii: "0")) { digits.append(byte &- UInt8(ascii: "0")) }
                if inFraction { exponent -= 1 }
            }
            at += 1
        }
        while let last = digits.last, last == 0 {
            digits.removeLast()
            exponent += 1
        }
        if digits.isEmpty { return 0 }
        guard exponent >= 0, digits.count + exponent <= 19 else { return nil }
        for digit in digits {
            magnitude = magnitude * 10 + UInt64(digit)
        }
        for _ in 0..<exponent {
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            magnitude = times10
        }
        return Self.signed(magnitude, isNegative)
    }

    private static func signed(_ magnitude: UInt64, _ isNegative: Bool) -> Int64? {
        if isNegative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// The number at `index` as the nearest `Double`, or `nil` when it is too large for one.
    func decimal(_ index: Int) -> Double? {
        let token = tokens[index]
        return Self.decimal(base, from: token.start, to: token.end)
    }

    /// The number in `base[start..<end]` (checked JSON number text) as ``decimal(_:)`` reads it.
    static func decimal(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int) -> Double? {
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: end - start), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }
}

/// Why a document did not decode, and where: what `JSONDecoder`'s `DecodingError` would have said.
struct JSONDecodingError: Error {
    enum Problem {
        /// Not JSON at all.
        case syntax(JSONSyntaxError)
        /// A required member is missing (the path ends with its name).
        case missing
        /// A required value is `null`.
        case null
        /// A value has another type; `expected` reads "a string", "an object"...
        case wrongType(expected: String)
        /// A value of the right type that is not valid, with words that say why.
        case invalid(String)
    }

    enum PathComponent {
        case name(String)
        case index(Int)
    }

    var problem: Problem
    /// From the document down to the value.
    var path: [PathComponent] = []

    init(_ problem: Problem, at path: [PathComponent] = []) {
        self.problem = problem
        self.path = path
    }

    /// The same error, one level further from the value (while unwinding).
    func inside(_ component: PathComponent) -> JSONDecodingError {
        var error = self
        error.path.insert(component, at: 0)
        return error
    }

    /// Whether the document was not JSON, as opposed to JSON of the wrong shape.
    var isSyntaxError: Bool {
        if case .syntax = problem { return true }
        return false
    }

    /// The words of the error, as `SurveyResponse(json:)` worded the same `DecodingError` when it read through
    /// `JSONDecoder`.
    var detail: String {
        let path = pathText
        switch problem {
        case .syntax(let error): return error.description
        case .missing: return "missing field '\(path)'"
        case .null: return "'\(path)' is null but must have a value"
        case .wrongType(let expected): return "'\(path)' has the wrong type (expected \(expected))"
        case .invalid(let reason): return "'\(path)': \(reason)"
        }
    }

    private var pathText: String {
        var text = ""
        for component in path {
            switch component {
            case .index(let index): text += "[\(index)]"
            case .name(let name):
                if !text.isEmpty { text += "." }
                text += name
            }
        }
        return text.isEmpty ? "(top level)" : text
    }
}

extension JSONReader {
    // Typed getters in JSONDecoder's terms: `required` is `decode(_:forKey:)`, `optional` is `decodeIfPresent`.

    /// The value of the member `name`, checked to be an object; `nil` when absent or `null` if `isOptional`.
    func object(_ name: StaticString, of object: Int, isOptional: Bool) throws(JSONDecodingError) -> Int? {
        try value(name, of: object, kind: .object, expected: "an object", isOptional: isOptional)
    }

    /// The value of the member `name`, checked to be an array; `nil` when absent or `null` if `isOptional`.
    func array(_ name: StaticString, of object: Int, isOptional: Bool) throws(JSONDecodingError) -> Int? {
        try value(name, of: object, kind: .array, expected: "an array", isOptional: isOptional)
    }

    /// A required string member.
    func requiredString(_ name: StaticString, of object: Int) throws(JSONDecodingError) -> String {
        // A required value is never nil: `value` throws for absent and `null`.
        string(try value(name, of: object, kind: .string, expected: "a string", isOptional: false)!)
    }

    /// A required string member, reused from `place` when it repeats (``string(_:place:)``).
    func requiredString(_ name: StaticString, of object: Int, place: Int) throws(JSONDecodingError) -> String {
        string(try value(name, of: object, kind: .string, expected: "a string", isOptional: false)!, place: place)
    }

    /// An optional string member, reused from `place` when it repeats (``string(_:place:)``).
    func optionalString(_ name: StaticString, of object: Int, place: Int) throws(JSONDecodingError) -> String? {
        try value(name, of: object, kind: .string, expected: "a string", isOptional: true).map {
            string($0, place: place)
        }
    }

    /// An optional string member: `nil` when absent or `null`.
    func optionalString(_ name: StaticString, of object: Int) throws(JSONDecodingError) -> String? {
        try value(name, of: object, kind: .string, expected: "a string", isOptional: true).map(string)
    }

    /// The index of a required string member, checked as ``requiredString(_:of:)`` checks it, for reading it
    /// without a `String` (``isString(_:_:)``, ``date(_:)``).
    func requiredStringIndex(_ name: StaticString, of object: Int) throws(JSONDecodingError) -> Int {
        try value(name, of: object, kind: .string, expected: "a string", isOptional: false)!
    }

    /// The index of an optional string member, checked as ``optionalString(_:of:)`` checks it; `nil` when
    /// absent or `null`.
    func optionalStringIndex(_ name: StaticString, of object: Int) throws(JSONDecodingError) -> Int? {
        try value(name, of: object, kind: .string, expected: "a string", isOptional: true)
    }

    /// Checks that the value at `index` is of `kind`; `null` is an error (`decode` of an array element).
    func check(_ index: Int, is kind: JSONTape.Kind, expected: String) throws(JSONDecodingError) {
        let found = self.kind(index)
        if found == kind { return }
        throw JSONDecodingError(found == .null ? .null : .wrongType(expected: expected))
    }

    /// The value indices of the members named `names.0` to `names.5` (nil: no name) of the object at
    /// `object`, found in one walk of it, each the first of its name as ``member(_:of:)`` finds it; nil for
    /// an absent one. Then ``checked(_:_:kind:expected:isOptional:)`` checks each as
    /// ``value(_:of:kind:expected:isOptional:)`` would have, in the order of the `Codable` decoder, so that
    /// errors are the same.
    @inline(__always)
    func members(
        _ names: (StaticString?, StaticString?, StaticString?, StaticString?, StaticString?, StaticString?),
        of object: Int
    ) -> (Int?, Int?, Int?, Int?, Int?, Int?) {
        var found: (Int?, Int?, Int?, Int?, Int?, Int?) = (nil, nil, nil, nil, nil, nil)
        let end = tokens[object].end
        var index = object + 1
        while index < end {
            // Names differ from each other, so a member is at most one of them.
            if found.0 == nil, let name = names.0, isName(index, name) {
                found.0 = index + 1
            } else if found.1 == nil, let name = names.1, isName(index, name) {
                found.1 = index + 1
            } else if found.2 == nil, let name = names.2, isName(index, name) {
                found.2 = index + 1
            } else if found.3 == nil, let name = names.3, isName(index, name) {
                found.3 = index + 1
            } else if found.4 == nil, let name = names.4, isName(index, name) {
                found.4 = index + 1
            } else if found.5 == nil, let name = names.5, isName(index, name) {
                found.5 = index + 1
            }
            index = after(index + 1)
        }
        return found
    }

    /// The value of member `name` found at `found` (``members(_:of:)``), checked to be an object; `nil` when
    /// absent or `null` if `isOptional`.
    func object(at found: Int?, _ name: StaticString, isOptional: Bool) throws(JSONDecodingError) -> Int? {
        try checked(found, name, kind: .object, expected: "an object", isOptional: isOptional)
    }

    /// The value of member `name` found at `found` (``members(_:of:)``), checked to be an array; `nil` when
    /// absent or `null` if `isOptional`.
    func array(at found: Int?, _ name: StaticString, isOptional: Bool) throws(JSONDecodingError) -> Int? {
        try checked(found, name, kind: .array, expected: "an array", isOptional: isOptional)
    }

    /// The string member `name` found at `found` (``members(_:of:)``), required.
    func requiredString(at found: Int?, _ name: StaticString) throws(JSONDecodingError) -> String {
        string(try checked(found, name, kind: .string, expected: "a string", isOptional: false)!)
    }

    /// The string member `name` found at `found` (``members(_:of:)``), optional.
    func optionalString(at found: Int?, _ name: StaticString) throws(JSONDecodingError) -> String? {
        try checked(found, name, kind: .string, expected: "a string", isOptional: true).map(string)
    }

    /// The index of the required string member `name` found at `found` (``members(_:of:)``).
    func requiredStringIndex(at found: Int?, _ name: StaticString) throws(JSONDecodingError) -> Int {
        try checked(found, name, kind: .string, expected: "a string", isOptional: false)!
    }

    /// The string member `name` found at `found` (``members(_:of:)``), required, reused from `place` when it
    /// repeats.
    func requiredString(at found: Int?, _ name: StaticString, place: Int) throws(JSONDecodingError) -> String {
        string(try checked(found, name, kind: .string, expected: "a string", isOptional: false)!, place: place)
    }

    /// The string member `name` found at `found` (``members(_:of:)``), optional, reused from `place` when it
    /// repeats.
    func optionalString(at found: Int?, _ name: StaticString, place: Int) throws(JSONDecodingError) -> String? {
        try checked(found, name, kind: .string, expected: "a string", isOptional: true).map { string($0, place: place) }
    }

    /// The index of the optional string member `name` found at `found` (``members(_:of:)``).
    func optionalStringIndex(at found: Int?, _ name: StaticString) throws(JSONDecodingError) -> Int? {
        try checked(found, name, kind: .string, expected: "a string", isOptional: true)
    }

    private func value(
        _ name: StaticString, of object: Int, kind: JSONTape.Kind, expected: String, isOptional: Bool
    ) throws(JSONDecodingError) -> Int? {
        try checked(member(name, of: object), name, kind: kind, expected: expected, isOptional: isOptional)
    }

    /// Checks the value of member `name` at `index` (nil: absent) as `decode` and `decodeIfPresent` do.
    @inline(__always)
    func checked(
        _ index: Int?, _ name: StaticString, kind: JSONTape.Kind, expected: String, isOptional: Bool
    ) throws(JSONDecodingError) -> Int? {
        // The path's name is made only for an error: making it costs more than finding the member.
        func key() -> [JSONDecodingError.PathComponent] {
            [.name(name.withUTF8Buffer { String(decoding: $0, as: UTF8.self) })]
        }
        guard let index else {
            if isOptional { return nil }
            throw JSONDecodingError(.missing, at: key())
        }
        let found = self.kind(index)
        if found == kind { return index }
        if found == .null {
            if isOptional { return nil }
            throw JSONDecodingError(.null, at: key())
        }
        throw JSONDecodingError(.wrongType(expected: expected), at: key())
    }
}

/// Runs `body`, adding `component` to the path of a decoding error it throws.
@inline(__always)
func decoding<Value>(
    _ component: @autoclosure () -> JSONDecodingError.PathComponent, _ body: () throws(JSONDecodingError) -> Value
) throws(JSONDecodingError) -> Value {
    do {
        return try body()
    } catch {
        throw error.inside(component())
    }
}
