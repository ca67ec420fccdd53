/// The shape of one JSON input record, told by the names of its top-level members: which reader to use.
///
/// The command-line tool's `render` and `send` read records of any of these shapes, one per line, and hosts
/// with mixed input can do the same:
///
/// ```swift
/// switch InputRecordShape(classifying: line) {
/// case .segmentMessage: messages = [try SegmentMessage(json: line)]
/// case .refinerWebhook: messages = try profiles.process(SurveyResponse(refinerWebhook: line), with: builder)
/// case .surveyResponse: messages = try profiles.process(SurveyResponse(json: line), with: builder)
/// }
/// ```
public enum InputRecordShape: Sendable, Hashable, CaseIterable {
    /// An already-built Segment message (an object with `type` and `messageId`), such as a line of `render`'s
    /// output or of a failed-messages file: read it with ``SegmentMessage/init(json:maximumBytes:)``.
    case segmentMessage
    /// A Refiner webhook payload (an object with `triggered_event`, or with both `response` and `form`): read
    /// it with ``SurveyResponse/init(refinerWebhook:)``.
    case refinerWebhook
    /// Anything else, the response's own JSON form included: read it with ``SurveyResponse/init(json:)``, whose
    /// errors then say what is missing or why the record is not JSON.
    case surveyResponse

    /// Classifies a record by its top-level member names, without decoding it.
    ///
    /// Cheap: one pass that looks at the top-level names and steps over their values without reading them, so
    /// a line costs a fraction of its decoding. A record that is not a JSON object, or whose top level is
    /// malformed, is ``surveyResponse`` (the catch-all, whose reader reports the problem); a malformed value
    /// inside a member is left to the reader of the shape the names say. Names are compared as written, so a
    /// name spelled with escapes (`"\u0074ype"`) does not count.
    public init(classifying json: some Collection<UInt8>) {
        let shape =
            json.withContiguousStorageIfAvailable(Self.classify) ?? Array(json).withUnsafeBufferPointer(Self.classify)
        self = shape
    }

    private static func classify(_ bytes: UnsafeBufferPointer<UInt8>) -> InputRecordShape {
        var scanner = TopLevelScanner(bytes)
        guard let names = scanner.names() else { return .surveyResponse }
        if names.contains(.type) && names.contains(.messageID) { return .segmentMessage }
        if names.contains(.triggeredEvent) || (names.contains(.response) && names.contains(.form)) {
            return .refinerWebhook
        }
        return .surveyResponse
    }
}

/// The top-level member names that tell the shapes apart.
private struct ShapeNames: OptionSet {
    var rawValue: UInt8
    static let type = ShapeNames(rawValue: 1)
    static let messageID = ShapeNames(rawValue: 2)
    static let triggeredEvent = ShapeNames(rawValue: 4)
    static let response = ShapeNames(rawValue: 8)
    static let form = ShapeNames(rawValue: 16)
}

/// Walks an object's top level: names are read, values are stepped over by counting brackets outside strings.
private struct TopLevelScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
    }

    /// The shape names among the top-level names, or `nil` when the top level is not a well-formed object.
    mutating func names() -> ShapeNames? {
        var found: ShapeNames = []
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        skipSpace()
        if take(UInt8(ascii: "}")) { return atEnd() ? found : nil }
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            guard let end = stringEnd() else { return nil }
            found.formUnion(Self.name(bytes, start, end))
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            guard skipValue() else { return nil }
            skipSpace()
            if take(UInt8(ascii: "}")) { return atEnd() ? found : nil }
            guard take(UInt8(ascii: ",")) else { return nil }
            skipSpace()
            // One trailing comma, as the readers accept.
            if take(UInt8(ascii: "}")) { return atEnd() ? found : nil }
        }
    }

    /// Which shape name the bytes between `start` and `end` are, compared as written.
    private static func name(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> ShapeNames {
        let length = end - start
        func matches(_ name: StaticString) -> Bool {
            guard name.utf8CodeUnitCount == length else { return false }
            for offset in 0..<length where bytes[start + offset] != name.utf8Start[offset] { return false }
            return true
        }
        switch length {
        case 4: return matches("type") ? .type : matches("form") ? .form : []
        case 8: return matches("response") ? .response : []
        case 9: return matches("messageId") ? .messageID : []
        case 15: return matches("triggered_event") ? .triggeredEvent : []
        default: return []
        }
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func atEnd() -> Bool {
        skipSpace()
        return index == bytes.count
    }

    /// Steps over the string that starts at `index` (a quote); returns the index of its closing quote.
    private mutating func stringEnd() -> Int? {
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                defer { index += 1 }
                return index
            case UInt8(ascii: "\\"): index += 2
            default: index += 1
            }
        }
        return nil
    }

    /// Steps over a value: a string, a container (brackets counted outside strings) or a scalar.
    private mutating func skipValue() -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return stringEnd() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard stringEnd() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return true
                    }
                default: break
                }
                index += 1
            }
            return false
        default:
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), 0x20, 0x0A, 0x0D, 0x09:
                    return index > start
                default: index += 1
                }
            }
            return false
        }
    }
}
