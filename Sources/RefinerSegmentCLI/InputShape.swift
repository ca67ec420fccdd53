import Foundation
import RefinerSegment

/// The shapes of input record that `render` and `send` read, told apart by the record's top-level fields: the
/// one place that decides what a record is.
///
/// - ``message``: an already-built Segment message (`render`'s output, a line of a failed file): an object
///   with `type` and `messageId`.
/// - ``unit``: messages that travel together (an `identify` and its `group`), as a JSON array of messages on
///   one line: how `send` writes a unit to its failed file, so that reading it back needs no pairing.
/// - ``webhook``: a Refiner webhook payload: an object with `triggered_event`, or with `response` and `form`.
/// - ``response``: anything else is read as the response's JSON form, whose decoder names what is missing.
///
/// Deciding looks at the bytes only (a scan of the top-level member names, no parse), and decoding goes
/// through the core's entry points: `SegmentMessage(json:)`, `SurveyResponse(refinerWebhook:)` and
/// `SurveyResponse(json:)`.
enum InputShape: Equatable {
    case message, unit, webhook, response

    /// The shape of one record.
    init(of record: [UInt8]) {
        self = record.withUnsafeBufferPointer { Self.classify($0) }
    }

    private static func classify(_ record: UnsafeBufferPointer<UInt8>) -> InputShape {
        var scanner = TopLevelScanner(record)
        switch scanner.skipSpace() {
        case UInt8(ascii: "["):
            return .unit
        case UInt8(ascii: "{"):
            let names = scanner.memberNames()
            if names.contains(.type) && names.contains(.messageID) {
                return .message
            } else if names.contains(.triggeredEvent) || (names.contains(.response) && names.contains(.form)) {
                return .webhook
            } else {
                return .response
            }
        default:
            return .response
        }
    }

    /// Whether the record is a survey response (in either shape), which a profile store turns into messages.
    var isResponse: Bool { self == .webhook || self == .response }

    /// The response a record of shape ``webhook`` or ``response`` holds.
    ///
    /// - Throws: ``RefinerSegmentError`` from the core's decoder for the shape (`unhandledEvent` for a
    ///   webhook of another event than `Completed Survey`), or `invalidInput` for a record of another shape.
    func response(from record: [UInt8]) throws(RefinerSegmentError) -> SurveyResponse {
        switch self {
        case .webhook: return try SurveyResponse(refinerWebhook: record)
        case .response: return try SurveyResponse(json: record)
        case .message, .unit:
            throw RefinerSegmentError(
                code: .invalidInput,
                detail:
                    "an already-built Segment message, not a survey response (send takes both; render only responses)"
            )
        }
    }

    /// The response a record holds, whatever its shape: what `InputShape(of: record).response(from: record)`
    /// gives, values and errors alike, in one pass over the bytes for the common case.
    ///
    /// A record that cannot be a Segment message to ``init(of:)`` (the raw bytes `"messageId"` appear nowhere
    /// in it) is read with `SurveyResponse(jsonOrRefinerWebhook:)`, which tells a webhook from the response
    /// form by the same top-level names from the one parse it makes. Anything that does not read that way
    /// goes through ``init(of:)`` and the decoder of its shape, so errors keep their words.
    static func response(inRecord record: [UInt8]) throws(RefinerSegmentError) -> SurveyResponse {
        if let response = onePassResponse(record) { return response }
        return try InputShape(of: record).response(from: record)
    }

    /// The response a record holds when it reads in one parse as a response (a webhook or the response form)
    /// and cannot be a Segment message (the raw bytes `"messageId"` appear nowhere in it); nil otherwise, and
    /// then the record's shape and that shape's decoder say what it is, or what is wrong with it. What `send`
    /// and `render` try first.
    ///
    /// With `repeated`, strings that repeat the last response's (the survey, the questions) are reused from it
    /// (``RepeatedStrings``): the same values, made once for a whole backfill.
    static func onePassResponse(_ record: [UInt8], repeated: RepeatedStrings? = nil) -> SurveyResponse? {
        guard !mayBeMessage(record) else { return nil }
        guard let repeated else { return try? SurveyResponse(jsonOrRefinerWebhook: record) }
        return try? SurveyResponse(jsonOrRefinerWebhook: record, repeated: repeated)
    }

    /// Whether the raw bytes `"messageId"` appear in the record: ``init(of:)`` compares raw member names, so
    /// a record without them is never a ``message``.
    private static func mayBeMessage(_ record: [UInt8]) -> Bool {
        let name: StaticString = "\"messageId\""
        let length = name.utf8CodeUnitCount
        // Found by its rarest byte, the `I` at offset 8 (two bytes follow it), with `memchr`.
        return record.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress, bytes.count >= length else { return false }
            var from = 8
            while from < bytes.count - 2,
                let found = memchr(base + from, Int32(UInt8(ascii: "I")), bytes.count - 2 - from)
            {
                let at = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                if memcmp(base + at - 8, name.utf8Start, length) == 0 { return true }
                from = at + 1
            }
            return false
        }
    }

    /// The messages a record of shape ``message`` or ``unit`` holds, validated, their bytes unchanged.
    ///
    /// - Throws: ``RefinerSegmentError`` from `SegmentMessage(json:)`, or `invalidMessage` for an empty unit
    ///   or a record of another shape.
    func messages(from record: [UInt8]) throws(RefinerSegmentError) -> [SegmentMessage] {
        switch self {
        case .message:
            return [try SegmentMessage(json: record)]
        case .unit:
            let elements = record.withUnsafeBufferPointer { TopLevelScanner($0).arrayElements() }
            guard let elements, !elements.isEmpty else {
                throw RefinerSegmentError(
                    code: .invalidMessage, detail: "a unit must be a non-empty JSON array of Segment messages")
            }
            var messages: [SegmentMessage] = []
            for element in elements { messages.append(try SegmentMessage(json: record[element])) }
            return messages
        case .webhook, .response:
            throw RefinerSegmentError(code: .invalidMessage, detail: "a survey response, not a Segment message")
        }
    }

    /// Writes a unit as one record on one line: a lone message as itself, several as a JSON array (``unit``).
    ///
    /// A message read from a pretty-printed document keeps its bytes as read, line breaks included. In
    /// valid JSON a raw line break can only be whitespace between tokens (a string holds `\n`, escaped), so
    /// each one becomes a space: the record stays the same JSON value, on one line of the failed file.
    static func record(of unit: [SegmentMessage]) -> [UInt8] {
        var bytes: [UInt8]
        if unit.count > 1 {
            bytes = [UInt8(ascii: "[")]
            for (index, message) in unit.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                bytes.append(contentsOf: message.json)
            }
            bytes.append(UInt8(ascii: "]"))
        } else {
            bytes = unit.first?.json ?? []
        }
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") || bytes[index] == UInt8(ascii: "\r") {
            bytes[index] = UInt8(ascii: " ")
        }
        return bytes
    }
}

/// Walks the top level of a JSON text without parsing values: the names of an object's members, the byte
/// ranges of an array's elements. Malformed text ends the walk early; the decoders report it.
private struct TopLevelScanner {
    enum Name {
        case type, messageID, triggeredEvent, response, form
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Skips white space and returns the byte there (0 at the end).
    mutating func skipSpace() -> UInt8 {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return bytes[index]
            }
        }
        return 0
    }

    /// The member names of the object that starts at the current `{`, among those ``InputShape`` looks at.
    mutating func memberNames() -> Set<Name> {
        var names: Set<Name> = []
        index += 1  // {
        while true {
            guard skipSpace() == UInt8(ascii: "\""), let name = string() else { return names }
            if name.elementsEqual("type".utf8) {
                names.insert(.type)
            } else if name.elementsEqual("messageId".utf8) {
                names.insert(.messageID)
            } else if name.elementsEqual("triggered_event".utf8) {
                names.insert(.triggeredEvent)
            } else if name.elementsEqual("response".utf8) {
                names.insert(.response)
            } else if name.elementsEqual("form".utf8) {
                names.insert(.form)
            }
            guard skipSpace() == UInt8(ascii: ":") else { return names }
            index += 1
            skipValue()
            guard skipSpace() == UInt8(ascii: ",") else { return names }
            index += 1
        }
    }

    /// The byte ranges of the elements of the array that starts the text, or nil when it is not one.
    func arrayElements() -> [Range<Int>]? {
        var scanner = self
        guard scanner.skipSpace() == UInt8(ascii: "[") else { return nil }
        scanner.index += 1
        var elements: [Range<Int>] = []
        if scanner.skipSpace() == UInt8(ascii: "]") { return scanner.restIsSpace(after: scanner.index) ? [] : nil }
        while true {
            let start = scanner.index
            scanner.skipValue()
            guard scanner.index > start else { return nil }
            elements.append(start..<scanner.index)
            switch scanner.skipSpace() {
            case UInt8(ascii: ","): scanner.index += 1
            case UInt8(ascii: "]"): return scanner.restIsSpace(after: scanner.index) ? elements : nil
            default: return nil
            }
            _ = scanner.skipSpace()
        }
    }

    private func restIsSpace(after bracket: Int) -> Bool {
        bytes[(bracket + 1)...].allSatisfy {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n")
        }
    }

    /// The raw bytes of the string at the current `"` (escapes left as they are), moving past it.
    private mutating func string() -> Slice<UnsafeBufferPointer<UInt8>>? {
        let start = index + 1
        index += 1
        while index < bytes.count {
            // Eight bytes at a time, then straight to the first quote or backslash.
            if index + 8 <= bytes.count {
                let found = Self.quotesOrBackslashes(in: word(at: index))
                guard found != 0 else {
                    index += 8
                    continue
                }
                index += found.trailingZeroBitCount / 8
            }
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""):
                index += 1
                return bytes[start..<(index - 1)]
            default: index += 1
            }
        }
        return nil
    }

    @inline(__always)
    private func word(at offset: Int) -> UInt64 {
        UnsafeRawPointer(bytes.baseAddress! + offset).loadUnaligned(as: UInt64.self)
    }

    /// The high bit of each of eight bytes that equals `byte` (SWAR). A borrow can flag a byte after a true
    /// match, never one before it, so the lowest flag is exact (the word is read little-endian).
    @inline(__always)
    private static func matches(_ byte: UInt8, in word: UInt64) -> UInt64 {
        let difference = word ^ (0x0101_0101_0101_0101 &* UInt64(byte))
        return (difference &- 0x0101_0101_0101_0101) & ~difference & 0x8080_8080_8080_8080
    }

    /// Flags on the quotes and backslashes among eight bytes.
    @inline(__always)
    private static func quotesOrBackslashes(in word: UInt64) -> UInt64 {
        matches(0x22, in: word) | matches(0x5C, in: word)
    }

    /// Flags on the quotes and brackets (`[`, `]`, `{`, `}`) among eight bytes: with 0x20 set, `[` and `]`
    /// read as `{` and `}`, and no other byte does.
    @inline(__always)
    private static func quotesOrBrackets(in word: UInt64) -> UInt64 {
        let folded = word | 0x2020_2020_2020_2020
        return matches(0x22, in: word) | matches(0x7B, in: folded) | matches(0x7D, in: folded)
    }

    /// Moves past one value: a string, or everything up to the `,`, `]` or `}` that ends it at this depth.
    private mutating func skipValue() {
        _ = skipSpace()
        var depth = 0
        while index < bytes.count {
            // Inside a container only quotes and brackets count: eight other bytes at a time, then straight to
            // the first of them.
            if depth > 0, index + 8 <= bytes.count {
                let found = Self.quotesOrBrackets(in: word(at: index))
                guard found != 0 else {
                    index += 8
                    continue
                }
                index += found.trailingZeroBitCount / 8
            }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                _ = string()
                if depth == 0 { return }
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { return }
                depth -= 1
                if depth == 0 {
                    index += 1
                    return
                }
            case UInt8(ascii: ","):
                if depth == 0 { return }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                if depth == 0 { return }
            default:
                break
            }
            index += 1
        }
    }
}
