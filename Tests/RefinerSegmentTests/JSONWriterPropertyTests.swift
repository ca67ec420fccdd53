import Foundation
import Testing

@testable import RefinerSegment

/// Random answer values, weighted toward the edges: every control character, scalars beyond the first
/// plane, the extreme integers, subnormal and extreme doubles, the first and last representable dates.
enum RandomValue {
    static func value(using random: inout SeededRandom) -> AnswerValue {
        switch Int.random(in: 0..<12, using: &random) {
        case 0..<3: return .string(string(using: &random))
        case 3, 4: return .integer(integer(using: &random))
        case 5, 6, 7: return .decimal(decimal(using: &random))
        case 8: return .boolean(Bool.random(using: &random))
        case 9, 10: return .date(date(using: &random))
        default:
            let count = Int.random(in: 0...5, using: &random)
            return .strings((0..<count).map { _ in string(using: &random) })
        }
    }

    /// Random text, often with control characters, quotes and backslashes, sometimes all 32 controls.
    static func string(using random: inout SeededRandom) -> String {
        switch Int.random(in: 0..<10, using: &random) {
        case 0:
            return String(String.UnicodeScalarView((0..<0x20).compactMap { Unicode.Scalar(UInt32($0)) }))
                + "\"\\/\u{7F}\u{2028}\u{2029}\u{10FFFF}"
        case 1, 2, 3:
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...30, using: &random) {
                scalars.append(
                    random.chance(1, in: 2)
                        ? Unicode.Scalar(UInt8.random(in: 0...0x20, using: &random))
                        : random.pick(["\"", "\\", "/", "\u{7F}", "é", "😀", "\u{10FFFF}", "\u{FEFF}", "a"])
                )
            }
            return String(scalars)
        default:
            return RandomText.string(maximumLength: 60, using: &random)
        }
    }

    static func integer(using random: inout SeededRandom) -> Int64 {
        switch Int.random(in: 0..<4, using: &random) {
        case 0:
            let edges: [Int64] = [
                .min, .max, .min + 1, .max - 1, 0, -1, 1, 1 << 53, (1 << 53) + 1, -(1 << 53) - 1, 10, -10,
            ]
            return random.pick(edges)
        case 1: return Int64.random(in: -1000...1000, using: &random)
        default: return Int64.random(in: .min ... .max, using: &random)
        }
    }

    static func decimal(using random: inout SeededRandom) -> Double {
        switch Int.random(in: 0..<6, using: &random) {
        case 0:
            let edges: [Double] = [
                0.0, -0.0, 0.1, -0.1, 1.0, 10.0, 1e16, -1e16, 1e21, 1e22, 1e-7, 123.456, 9007199254740993.0,
                .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude,
                -.leastNonzeroMagnitude, .leastNormalMagnitude, Double.leastNormalMagnitude.nextDown, .pi, .ulpOfOne,
            ]
            return random.pick(edges)
        case 1:
            // Subnormal.
            let value = Double(bitPattern: UInt64.random(in: 1..<(1 << 52), using: &random))
            return random.chance(1, in: 2) ? value : -value
        case 2: return Double.random(in: -1000...1000, using: &random)
        case 3: return Double(Int64.random(in: -1_000_000...1_000_000, using: &random))
        default:
            // Any finite bit pattern: every exponent.
            while true {
                let value = Double(bitPattern: random.next())
                if value.isFinite { return value }
            }
        }
    }

    /// The earliest and latest instants a four-digit year can carry.
    static let earliest = -62_167_219_200.0
    static let latest = 253_402_300_800.0

    static func date(using random: inout SeededRandom) -> Date {
        switch Int.random(in: 0..<6, using: &random) {
        case 0:
            let edges: [Double] = [
                earliest, earliest + 0.001, earliest + 0.0009, latest.nextDown, latest - 0.001, latest - 0.0005,
                0, -0.001, -0.0005, 0.0005, 951_782_400, 1_795_169_700, -2_208_988_800, 4_107_542_400,
            ]
            return Date(timeIntervalSince1970: random.pick(edges))
        case 1:
            // Whole milliseconds, as dates read from JSON are.
            let millis = Int64.random(in: Int64(earliest * 1000)..<Int64(latest * 1000), using: &random)
            return Date(timeIntervalSince1970: Double(millis) / 1000)
        default:
            return Date(timeIntervalSince1970: Double.random(in: earliest..<latest, using: &random))
        }
    }

    /// Random traits with keys that need escaping as often as not.
    static func traits(using random: inout SeededRandom) -> Traits {
        var traits = Traits()
        for _ in 0..<Int.random(in: 0...12, using: &random) {
            let key =
                random.chance(1, in: 2) ? string(using: &random) : RandomText.words(maximumCount: 3, using: &random)
            traits[key] = value(using: &random)
        }
        return traits
    }
}

/// What swift-foundation's `JSONDecoder` reads: a second parser, independent of JSONSerialization (which on
/// Linux rounds some doubles to a neighbour and drops U+FEFF at the start of a string or after an escape),
/// that reads strings scalar for scalar and numbers correctly rounded.
indirect enum DecodedJSON: Decodable {
    case object([String: DecodedJSON])
    case array([DecodedJSON])
    case string(String)
    case number(integer: Int64?, double: Double?)
    case boolean(Bool)
    case null

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: Key.self) {
            var members: [String: DecodedJSON] = [:]
            for key in container.allKeys {
                members[key.stringValue] = try container.decode(DecodedJSON.self, forKey: key)
            }
            self = .object(members)
        } else if var container = try? decoder.unkeyedContainer() {
            var elements: [DecodedJSON] = []
            while !container.isAtEnd { elements.append(try container.decode(DecodedJSON.self)) }
            self = .array(elements)
        } else {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let flag = try? container.decode(Bool.self) {
                self = .boolean(flag)
            } else if let text = try? container.decode(String.self) {
                self = .string(text)
            } else {
                self = .number(integer: try? container.decode(Int64.self), double: try? container.decode(Double.self))
            }
        }
    }

    subscript(key: String) -> DecodedJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    static func read(_ json: [UInt8]) throws -> DecodedJSON {
        try JSONDecoder().decode(DecodedJSON.self, from: Data(json))
    }
}

/// Whether what the two parsers read is exactly `value`: strings scalar for scalar, integers as integers,
/// doubles bit for bit, dates as their ISO-8601 text. `nil` when it is, else what differs.
///
/// `parsed` is what JSONSerialization read: it must agree in type and value, except for its two known
/// lapses on Linux (see ``DecodedJSON``), where `decoded` gives the exact reading.
func mismatch(_ parsed: Any?, _ decoded: DecodedJSON?, _ value: AnswerValue) -> String? {
    switch value {
    case .string(let string):
        guard let text = parsed as? String, case .string(let exact)? = decoded else {
            return "expected a string, got \(String(describing: parsed))"
        }
        guard sameScalars(exact, string) else {
            return "string \(exact.debugDescription) != \(string.debugDescription)"
        }
        return sameScalarsButBOM(text, string)
            ? nil : "JSONSerialization read \(text.debugDescription) for \(string.debugDescription)"
    case .integer(let integer):
        guard let number = parsed as? NSNumber, case .number(let exact?, _)? = decoded else {
            return "expected an integer, got \(String(describing: parsed))"
        }
        guard number.int64Value == integer, exact == integer else { return "integer \(number)/\(exact) != \(integer)" }
        let text = number.stringValue
        return text.contains(where: { ".eE".contains($0) }) ? "integer \(integer) read back as \(text)" : nil
    case .decimal(let decimal):
        guard let number = parsed as? NSNumber, case .number(_, let exact?)? = decoded else {
            return "expected a number, got \(String(describing: parsed))"
        }
        guard exact.bitPattern == decimal.bitPattern else { return "double \(exact) != \(decimal)" }
        let nearby =
            number.doubleValue == decimal
            || abs(number.doubleValue - decimal) <= max(4 * decimal.ulp, abs(decimal) * 1e-13)
        return nearby ? nil : "JSONSerialization read \(number.doubleValue) for \(decimal)"
    case .boolean(let boolean):
        guard let flag = parsed as? Bool, case .boolean(let exact)? = decoded else {
            return "expected a boolean, got \(String(describing: parsed))"
        }
        return flag == boolean && exact == boolean ? nil : "boolean \(flag) != \(boolean)"
    case .strings(let strings):
        guard let array = parsed as? [Any], case .array(let exact)? = decoded, array.count == strings.count,
            exact.count == strings.count
        else {
            return "expected \(strings.count) strings, got \(String(describing: parsed))"
        }
        for index in strings.indices {
            if let difference = mismatch(array[index], exact[index], .string(strings[index])) { return difference }
        }
        return nil
    case .date(let date):
        guard let text = parsed as? String, case .string(let exact)? = decoded, text == exact else {
            return "expected a date string, got \(String(describing: parsed))"
        }
        return dateMismatch(text, date)
    }
}

/// Equal but for the U+FEFF that JSONSerialization drops on Linux.
func sameScalarsButBOM(_ left: String, _ right: String) -> Bool {
    left.unicodeScalars.filter { $0 != "\u{FEFF}" }.elementsEqual(right.unicodeScalars.filter { $0 != "\u{FEFF}" })
}

/// Keys that JSONSerialization may merge into one on Linux (equal but for U+FEFF); their values are checked
/// through `JSONDecoder` alone.
func keysMergedByJSONSerialization(_ keys: [String]) -> Set<String> {
    var groups: [[Unicode.Scalar]: [String]] = [:]
    for key in keys { groups[Array(key.unicodeScalars.filter { $0 != "\u{FEFF}" }), default: []].append(key) }
    return Set(groups.values.filter { $0.count > 1 }.flatMap { $0 })
}

/// What JSONSerialization would give for a value `JSONDecoder` read, for keys it cannot be asked about.
func foundationValue(_ decoded: DecodedJSON?) -> Any? {
    switch decoded {
    case .string(let text)?: return text
    case .number(let integer?, _)?: return NSNumber(value: integer)
    case .number(nil, let double?)?: return NSNumber(value: double)
    case .boolean(let flag)?: return flag
    case .array(let elements)?: return elements.map { foundationValue($0) as Any }
    default: return nil
    }
}

/// The member named `key` in what JSONSerialization read, allowing for the U+FEFF it drops.
func member(_ object: [String: Any], _ key: String) -> Any? {
    if let value = object[key] { return value }
    return object.first { sameScalarsButBOM($0.key, key) }?.value
}

func sameScalars(_ left: String, _ right: String) -> Bool {
    left.unicodeScalars.elementsEqual(right.unicodeScalars)
}

/// Checks a written date: `YYYY-MM-DDTHH:MM:SS.mmmZ`, naming the millisecond the date falls in (the writer
/// rounds to the microsecond, then truncates), with the calendar fields Foundation's Gregorian calendar
/// gives for dates after the Julian switch.
func dateMismatch(_ text: String, _ date: Date) -> String? {
    let bytes = Array(text.utf8)
    let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
    guard bytes.count == 24, digitPositions.allSatisfy({ bytes[$0] &- UInt8(ascii: "0") < 10 }),
        text.hasSuffix("Z"), Array(text.utf8)[4] == UInt8(ascii: "-"), Array(text.utf8)[10] == UInt8(ascii: "T")
    else { return "\(text) is not YYYY-MM-DDTHH:MM:SS.mmmZ (for \(date.timeIntervalSince1970))" }
    guard let read = Timestamp.date(from: text) else { return "\(text) does not read back" }
    let seconds = date.timeIntervalSince1970
    let tolerance = max(1e-6, seconds.ulp * 2)
    let offset = seconds - read.timeIntervalSince1970
    guard offset > -tolerance, offset < 0.001 + tolerance else {
        return "\(text) is \(offset) s away from \(seconds)"
    }
    if read.timeIntervalSince1970 > -11_676_096_000 {  // after 1600-01-01
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let fields = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: read)
        let expected = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", fields.year!, fields.month!, fields.day!, fields.hour!,
            fields.minute!, fields.second!)
        guard text.hasPrefix(expected) else { return "\(text) but Foundation's calendar says \(expected)" }
    }
    return nil
}

/// Property tests of the JSON writer: whatever the keys and values, the output parses back with
/// Foundation's JSONSerialization to exactly what was written.
struct JSONWriterPropertyTests {
    static let seed = FuzzSettings.seed

    @Test
    func writtenObjectsReadBackToTheSameValues() async throws {
        let iterations = FuzzSettings.iterations(2000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let traits = RandomValue.traits(using: &random)
            var writer = JSONWriter(capacity: 16)
            writer.beginObject()
            writer.rawKey("traits")
            writer.beginObject()
            for (key, value) in traits {
                writer.key(key)
                writer.value(value)
            }
            writer.endObject()
            writer.rawKey("values")
            writer.beginArray()
            for (_, value) in traits { writer.value(value) }
            writer.endArray()
            writer.endObject()
            let json = writer.bytes
            let text = String(decoding: json, as: UTF8.self)
            #expect(String(validating: json, as: UTF8.self) != nil, "\(origin): not UTF-8")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any], "\(origin): \(text)")
            let parsedTraits = try #require(object["traits"] as? [String: Any], "\(origin): \(text)")
            let parsedValues = try #require(object["values"] as? [Any], "\(origin): \(text)")
            let decoded = try DecodedJSON.read(json)
            guard case .object(let decodedTraits)? = decoded["traits"],
                case .array(let decodedValues)? = decoded["values"]
            else {
                Issue.record("\(origin): JSONDecoder read another shape from \(text)")
                continue
            }
            #expect(
                Set(decodedTraits.keys.map { Array($0.unicodeScalars) })
                    == Set(traits.map { Array($0.key.unicodeScalars) }),
                "\(origin): keys differ in \(text)"
            )
            let merged = keysMergedByJSONSerialization(traits.map(\.key))
            #expect(
                parsedTraits.count <= traits.count && parsedTraits.count >= traits.count - merged.count / 2,
                "\(origin): \(text)")
            #expect(parsedValues.count == traits.count && decodedValues.count == traits.count, "\(origin): \(text)")
            for (position, (key, value)) in traits.enumerated() {
                let parsed = merged.contains(key) ? foundationValue(decodedTraits[key]) : member(parsedTraits, key)
                if let difference = mismatch(parsed, decodedTraits[key], value) {
                    Issue.record("\(origin): trait \(key.debugDescription): \(difference) in \(text)")
                }
                if let difference = mismatch(parsedValues[position], decodedValues[position], value) {
                    Issue.record("\(origin): array element: \(difference) in \(text)")
                }
            }
        }
    }

    @Test
    func builtMessagesReadBackToTheResponseAndProfile() async throws {
        let iterations = FuzzSettings.iterations(1000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            var configuration = SegmentCallBuilder.Configuration(maximumMessageBytes: 1 << 30)
            configuration.sendsCompletedSurveyEvent = random.chance(1, in: 3)
            configuration.library = LibraryInfo(
                name: RandomValue.string(using: &random), version: RandomValue.string(using: &random))
            let builder = try SegmentCallBuilder(configuration: configuration)
            let response = randomResponse(using: &random)
            let profile = CollectedProfile(
                userTraits: random.chance(1, in: 3) ? RandomValue.traits(using: &random) : Traits(),
                email: random.chance(1, in: 3) ? RandomValue.string(using: &random) : nil,
                accountTraits: random.chance(1, in: 3) ? RandomValue.traits(using: &random) : Traits()
            )
            let (messages, updated) = try builder.process(response, profile: profile)
            let expectedKinds: [SegmentMessage.Kind] =
                [.identify] + (response.account == nil ? [] : [.group])
                + (configuration.sendsCompletedSurveyEvent ? [.track] : [])
            #expect(messages.map(\.kind) == expectedKinds, "\(origin)")
            var identifyTraits = updated.userTraits
            if let email = updated.email { identifyTraits[builder.normalizer.key(for: "email")] = .string(email) }
            for message in messages {
                let text = message.description
                #expect(String(validating: message.json, as: UTF8.self) != nil, "\(origin): not UTF-8")
                #expect(message.byteCount == text.utf8.count, "\(origin): \(text)")
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(message.json)) as? [String: Any], "\(origin): \(text)")
                let decoded = try DecodedJSON.read(message.json)
                func expectText(_ field: String, _ expected: String?, in object: [String: Any], _ decoded: DecodedJSON?)
                {
                    guard let expected else {
                        #expect(object[field] == nil, "\(origin): unexpected \(field) in \(text)")
                        return
                    }
                    if let difference = mismatch(object[field], decoded?[field], .string(expected)) {
                        Issue.record("\(origin): \(field): \(difference) in \(text)")
                    }
                }
                #expect(object["type"] as? String == message.kind.rawValue, "\(origin): \(text)")
                expectText("messageId", message.messageID, in: object, decoded)
                #expect(message.messageID.utf8.count <= 100, "\(origin): \(text)")
                if let difference = mismatch(object["timestamp"], decoded["timestamp"], .date(response.completedAt)) {
                    Issue.record("\(origin): timestamp: \(difference)")
                }
                #expect(object["timestamp"] as? String == Timestamp.string(from: response.completedAt), "\(origin)")
                expectText("userId", response.user.id.flatMap { $0.isEmpty ? nil : $0 }, in: object, decoded)
                expectText(
                    "anonymousId", response.user.anonymousID.flatMap { $0.isEmpty ? nil : $0 }, in: object, decoded)
                let library = (object["context"] as? [String: Any])?["library"] as? [String: Any] ?? [:]
                let decodedLibrary = decoded["context"]?["library"]
                expectText("name", configuration.library.name, in: library, decodedLibrary)
                expectText("version", configuration.library.version, in: library, decodedLibrary)
                let expectedTraits: Traits
                switch message.kind {
                case .identify:
                    expectedTraits = identifyTraits
                case .group:
                    expectText("groupId", response.account?.id, in: object, decoded)
                    expectedTraits = updated.accountTraits
                default:
                    #expect(object["event"] as? String == SegmentCallBuilder.completedSurveyEvent, "\(origin)")
                    var properties: Traits = [
                        "survey_id": .string(response.survey.id), "response_id": .string(response.id),
                    ]
                    if let name = response.survey.name { properties["survey_name"] = .string(name) }
                    expectedTraits = properties
                }
                let traitsField = message.kind == .track ? "properties" : "traits"
                let parsed = try #require(object[traitsField] as? [String: Any], "\(origin): \(text)")
                let merged = keysMergedByJSONSerialization(expectedTraits.map(\.key))
                #expect(
                    merged.isEmpty ? parsed.count == expectedTraits.count : parsed.count <= expectedTraits.count,
                    "\(origin): \(text)")
                for (key, value) in expectedTraits {
                    let parsedValue =
                        merged.contains(key) ? foundationValue(decoded[traitsField]?[key]) : member(parsed, key)
                    if let difference = mismatch(parsedValue, decoded[traitsField]?[key], value) {
                        Issue.record(
                            "\(origin): \(message.kind) trait \(key.debugDescription): \(difference) in \(text)")
                    }
                }
            }
        }
    }

    @Test
    func batchesReadBackAndAreMeasuredExactly() async throws {
        let iterations = FuzzSettings.iterations(100)
        let builder = try SegmentCallBuilder(
            configuration: .init(sendsCompletedSurveyEvent: true, maximumMessageBytes: 1 << 30))
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            var messages: [SegmentMessage] = []
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                messages += try builder.process(randomResponse(using: &random), profile: CollectedProfile()).messages
            }
            let writeKey = WriteKey(RandomValue.string(using: &random))
            let sentAt = RandomValue.date(using: &random)
            let json = SegmentBatch.encode(messages, sentAt: sentAt, writeKey: writeKey)
            #expect(SegmentBatch.byteCount(of: messages, writeKey: writeKey) == json.count, "\(origin)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any], "\(origin)")
            let decoded = try DecodedJSON.read(json)
            if let difference = mismatch(object["writeKey"], decoded["writeKey"], .string(writeKey.rawValue)) {
                Issue.record("\(origin): writeKey: \(difference)")
            }
            if let difference = mismatch(object["sentAt"], decoded["sentAt"], .date(sentAt)) {
                Issue.record("\(origin): sentAt: \(difference)")
            }
            guard let batch = object["batch"] as? [[String: Any]], case .array(let decodedBatch)? = decoded["batch"]
            else {
                Issue.record("\(origin): no batch array")
                continue
            }
            #expect(batch.count == messages.count && decodedBatch.count == messages.count, "\(origin)")
            for ((element, decodedElement), message) in zip(zip(batch, decodedBatch), messages) {
                if let difference = mismatch(
                    element["messageId"], decodedElement["messageId"], .string(message.messageID))
                {
                    Issue.record("\(origin): messageId: \(difference)")
                }
            }
        }
    }

    @Test
    func messagesOverTheLimitAreRejectedNeverCut() async throws {
        let iterations = FuzzSettings.iterations(300)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let limit = Int.random(in: 200...4000, using: &random)
            let builder = try SegmentCallBuilder(configuration: .init(maximumMessageBytes: limit))
            let response = randomResponse(using: &random)
            do {
                let messages = try builder.process(response, profile: CollectedProfile()).messages
                for message in messages {
                    #expect(message.byteCount <= limit, "\(origin)")
                    #expect((try? JSONSerialization.jsonObject(with: Data(message.json))) != nil, "\(origin)")
                }
            } catch {
                #expect(error.code == .messageTooLarge, "\(origin): \(error)")
                #expect(error.responseID == response.id, "\(origin): \(error)")
                let unlimited = try SegmentCallBuilder(configuration: .init(maximumMessageBytes: 1 << 30))
                let sizes = try unlimited.process(response, profile: CollectedProfile()).messages.map(\.byteCount)
                #expect(sizes.contains { $0 > limit }, "\(origin): rejected though every message fits: \(sizes)")
            }
        }
    }
}

/// A valid response with random ids, texts, values and account traits.
private func randomResponse(using random: inout SeededRandom) -> SurveyResponse {
    func nonEmpty(_ random: inout SeededRandom) -> String {
        let text = RandomValue.string(using: &random)
        return text.isEmpty ? "x" : text
    }
    let userID: String? = random.chance(2, in: 3) ? nonEmpty(&random) : nil
    let anonymousID: String? =
        userID == nil ? nonEmpty(&random) : (random.chance(1, in: 3) ? RandomValue.string(using: &random) : nil)
    let account: Account? =
        random.chance(2, in: 3)
        ? Account(
            id: nonEmpty(&random), traits: random.chance(1, in: 2) ? RandomValue.traits(using: &random) : Traits())
        : nil
    let answers = (0..<Int.random(in: 0...10, using: &random)).map { position in
        Answer(
            question: Question(
                id: "q\(position)" + RandomValue.string(using: &random),
                text: random.chance(1, in: 2) ? RandomText.words(using: &random) : RandomValue.string(using: &random),
                propertyName: random.chance(1, in: 6) ? "custom \(position)" : nil,
                attribution: random.chance(1, in: 2) ? .user : .account
            ),
            value: random.chance(1, in: 8) ? nil : RandomValue.value(using: &random)
        )
    }
    return SurveyResponse(
        id: random.chance(1, in: 10)
            ? String(repeating: nonEmpty(&random), count: 40) : nonEmpty(&random),
        completedAt: RandomValue.date(using: &random),
        survey: Survey(
            id: RandomValue.string(using: &random),
            name: random.chance(1, in: 2) ? RandomValue.string(using: &random) : nil),
        user: User(
            id: userID, anonymousID: anonymousID,
            email: random.chance(1, in: 2) ? RandomValue.string(using: &random) : nil),
        account: account,
        answers: answers
    )
}
