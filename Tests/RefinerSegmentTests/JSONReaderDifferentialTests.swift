import Foundation
import Testing

@testable import RefinerSegment

/// The library's JSON reader against Foundation's `JSONDecoder` through the `Codable` conformances, on random
/// and mutated inputs: the same value, or the same kind of error (not JSON, or JSON of the wrong shape, with
/// the same words for the latter). Seeded and reproducible (see ``FuzzSettings``).
struct JSONReaderDifferentialTests {
    @Test
    func responsesReadAsJSONDecoderReadsThem() async throws {
        let seed = FuzzSettings.seed
        var compared = (values: 0, syntax: 0, shape: 0)
        for index in 0..<FuzzSettings.iterations(1_500) {
            var random = SeededRandom(seed: seed, case: index)
            let valid = try DifferentialInput.responseJSON(using: &random)
            for input in [valid] + (0..<4).map({ _ in DifferentialInput.mutate(valid, using: &random) }) {
                let outcome = compare(input, origin: FuzzSettings.origin(seed: seed, case: index)) {
                    (bytes: [UInt8]) throws(RefinerSegmentError) in
                    try SurveyResponse(json: bytes)
                } oracle: {
                    try JSONDecoder().decode(SurveyResponse.self, from: Data($0))
                }
                compared.values += outcome == .values ? 1 : 0
                compared.syntax += outcome == .syntaxErrors ? 1 : 0
                compared.shape += outcome == .shapeErrors ? 1 : 0
            }
            await FuzzSettings.shareThePool()
        }
        // The inputs reach all three outcomes, or the test would compare less than it claims.
        #expect(compared.values > 100 && compared.syntax > 100 && compared.shape > 100, "\(compared)")
    }

    @Test
    func webhooksReadAsJSONDecoderReadsThem() async throws {
        let seed = FuzzSettings.seed ^ 0x77
        var compared = (values: 0, errors: 0)
        for index in 0..<FuzzSettings.iterations(800) {
            var random = SeededRandom(seed: seed, case: index)
            let valid = DifferentialInput.webhookJSON(using: &random)
            for input in [valid] + (0..<4).map({ _ in DifferentialInput.mutate(valid, using: &random) }) {
                let outcome = compare(input, origin: FuzzSettings.origin(seed: seed, case: index)) {
                    (bytes: [UInt8]) throws(RefinerSegmentError) in
                    try RefinerWebhook(json: bytes)
                } oracle: {
                    try JSONDecoder().decode(RefinerWebhook.self, from: Data($0))
                }
                if outcome == .values { compared.values += 1 } else { compared.errors += 1 }
            }
            await FuzzSettings.shareThePool()
        }
        #expect(compared.values > 100 && compared.errors > 100, "\(compared)")
    }

    @Test
    func messagesReadAsJSONDecoderReadsThem() async throws {
        let seed = FuzzSettings.seed ^ 0x99
        let builder = try SegmentCallBuilder()
        for index in 0..<FuzzSettings.iterations(500) {
            var random = SeededRandom(seed: seed, case: index)
            guard
                let response = try? JSONDecoder().decode(
                    SurveyResponse.self, from: Data(try DifferentialInput.responseJSON(using: &random))),
                let built = try? builder.process(response, profile: CollectedProfile())
            else { continue }
            for message in built.messages {
                for input in [message.json]
                    + (0..<3).map({ _ in DifferentialInput.mutate(message.json, using: &random) })
                {
                    let new = Result { () throws(RefinerSegmentError) in try SegmentMessage(json: input) }
                    let old = Result { try OldMessageReader.read(input) }
                    switch (new, old) {
                    case (.success(let new), .success(let old)):
                        #expect(new == old, "\(FuzzSettings.origin(seed: seed, case: index))")
                    case (.failure(let new), .failure(let old as RefinerSegmentError)):
                        #expect(new.code == old.code, "\(new) / \(old)")
                        if new.detail.hasPrefix("not valid JSON") != old.detail.hasPrefix("not valid JSON") {
                            #expect(
                                JSONReaderDifferentialTests.readerIsStricter(new, input),
                                "\(new) / \(old): \(String(decoding: input, as: UTF8.self))")
                        }
                    case (.failure(let new), .success):
                        #expect(
                            JSONReaderDifferentialTests.readerIsStricter(new, input),
                            "\(new): \(String(decoding: input, as: UTF8.self))")
                    default:
                        Issue.record("\(new) / \(old): \(String(decoding: input, as: UTF8.self))")
                    }
                }
            }
            await FuzzSettings.shareThePool()
        }
    }

    @Test(arguments: [
        // Nesting at and past JSONDecoder's bound of 512 levels.
        (String(repeating: "[", count: 512) + String(repeating: "]", count: 512), false),
        (String(repeating: "[", count: 513) + String(repeating: "]", count: 513), true),
        (#"{"answers": "#.appending(String(repeating: "[", count: 600)), true),
    ])
    func depthIsBoundedAsJSONDecoderBoundsIt(json: String, isSyntaxError: Bool) {
        let error = #expect(throws: RefinerSegmentError.self) { try SurveyResponse(json: Array(json.utf8)) }
        #expect(error?.detail.hasPrefix("not valid JSON") == isSyntaxError, "\(error?.detail ?? "")")
        if isSyntaxError { #expect(error?.detail.contains("deeper than 512 levels") == true) }
    }

    enum Outcome { case values, syntaxErrors, shapeErrors }

    /// Reads `input` both ways and records a difference as an issue.
    private func compare<Value: Equatable>(
        _ input: [UInt8], origin: String,
        _ reader: ([UInt8]) throws(RefinerSegmentError) -> Value,
        oracle: ([UInt8]) throws -> Value
    ) -> Outcome {
        let text = String(decoding: input, as: UTF8.self)
        let new = Result { () throws(RefinerSegmentError) in try reader(input) }
        let old = Result { try oracle(input) }
        switch (new, old) {
        case (.success(let new), .success(let old)):
            #expect(new == old, "\(origin): \(text)")
            return .values
        case (.failure(let new), .failure(let old as DecodingError)):
            let oldDetail = DecodingErrorWords.describe(old)
            let isSyntax = oldDetail.hasPrefix("not valid JSON")
            if new.detail.hasPrefix("not valid JSON") == isSyntax {
                if !isSyntax { #expect(Self.sameShapeError(new.detail, oldDetail), "\(origin): \(text)") }
                return isSyntax ? .syntaxErrors : .shapeErrors
            }
            #expect(Self.readerIsStricter(new, input), "\(origin): \(new.detail) / \(oldDetail): \(text)")
            return .syntaxErrors
        case (.failure(let new), .success):
            #expect(Self.readerIsStricter(new, input), "\(origin): \(new.detail) / read by JSONDecoder: \(text)")
            return .syntaxErrors
        default:
            Issue.record("\(origin): \(new) / \(old): \(text)")
            return .values
        }
    }

    /// The same words, but where several traits are wrong: JSONDecoder visits an object's keys in hash order,
    /// so which bad trait it names changes from run to run (the reader names the first in the document).
    static func sameShapeError(_ new: String, _ old: String) -> Bool {
        if new == old { return true }
        let traits = "'account.traits."
        guard new.hasPrefix(traits), old.hasPrefix(traits) else { return false }
        return new.split(separator: "'").last == old.split(separator: "'").last
    }

    /// The one difference allowed: JSONDecoder checks a string only when it decodes it, so a bad string (an
    /// invalid escape, a lone surrogate, invalid UTF-8) after the first error, or in a member nothing decodes,
    /// goes unnoticed; the reader checks every string, and says the input is not JSON, which
    /// `JSONSerialization` (which reads every string) must confirm.
    static func readerIsStricter(_ error: RefinerSegmentError, _ input: [UInt8]) -> Bool {
        error.detail.hasPrefix("not valid JSON")
            && (try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed])) == nil
    }
}

/// `SegmentMessage(json:)` as it read messages with JSONDecoder, the oracle of the differential test.
enum OldMessageReader {
    private struct Probe: Decodable {
        var type: String?
        var messageId: String?
        var userId: String?
        var anonymousId: String?
        var groupId: String?
        var event: String?
    }

    static func read(_ bytes: [UInt8]) throws -> SegmentMessage {
        do {
            _ = try JSONDecoder().decode(Probe.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw RefinerSegmentError(code: .invalidMessage, detail: DecodingErrorWords.describe(error))
        }
        // Valid JSON: the checks after decoding are the same code in both.
        return try SegmentMessage(json: bytes)
    }
}

/// Inputs for the differential tests: valid documents and mutations of them.
enum DifferentialInput {
    /// A response's JSON form, as a host writes it, with optional fields left out, `null` or of the wrong type
    /// now and then, numbers in several spellings and strings with escapes.
    static func responseJSON(using random: inout SeededRandom) throws -> [UInt8] {
        func text() -> String { quoted(RandomValue.string(using: &random), using: &random) }
        func number() -> String { numberText(using: &random) }
        func value() -> String {
            switch Int.random(in: 0..<10, using: &random) {
            case 0, 1: return text()
            case 2, 3, 4: return number()
            case 5: return random.pick(["true", "false", "null"])
            case 6:
                return "[" + (0..<Int.random(in: 0...3, using: &random)).map { _ in text() }.joined(separator: ",")
                    + "]"
            case 7: return random.pick(["{}", #"{"a": 1}"#, "[1]", #"["a", null]"#, "1e999", "-1e400"])
            default: return quoted(random.pick(["2026-11-20T10:15:00Z", "2026-11-20", "soon"]), using: &random)
            }
        }
        var members: [String] = [
            #""id": \#(random.chance(1, in: 30) ? number() : text())"#,
            #""completedAt": \#(quoted(random.pick(["2026-11-20T10:15:00.000Z", "2026-11-20T10:15:00+02:00", "2026-11-20T10:15:00.123456Z", "soon", ""]), using: &random))"#,
            #""survey": {"id": \#(text())\#(random.chance(1, in: 2) ? #", "name": \#(text())"# : "")}"#,
            #""user": {"id": \#(random.chance(1, in: 5) ? "null" : text()), "email": \#(text())}"#,
        ]
        if random.chance(1, in: 2) {
            var traits: [String] = []
            for _ in 0..<Int.random(in: 0...3, using: &random) { traits.append("\(text()): \(value())") }
            members.append(#""account": {"id": \#(text()), "traits": {\#(traits.joined(separator: ", "))}}"#)
        }
        var answers: [String] = []
        for position in 0..<Int.random(in: 0...6, using: &random) {
            var question = [#""id": "q\#(position)""#, #""text": \#(text())"#]
            if random.chance(1, in: 4) {
                question.append(
                    #""attribution": \#(random.pick([#""user""#, #""account""#, #""team""#, "null", "1"]))"#)
            }
            if random.chance(1, in: 4) {
                question.append(#""kind": \#(random.pick([#""date""#, #""text""#, #""number""#]))"#)
            }
            if random.chance(1, in: 6) { question.append(#""property": \#(text())"#) }
            if random.chance(1, in: 20) { question.removeFirst() }
            question.shuffle(using: &random)
            var answer = [#""question": {\#(question.joined(separator: ", "))}"#]
            if random.chance(5, in: 6) { answer.append(#""value": \#(value())"#) }
            answers.append("{" + answer.joined(separator: ", ") + "}")
        }
        members.append(#""answers": [\#(answers.joined(separator: ", "))]"#)
        if random.chance(1, in: 20) { members.removeFirst() }
        if random.chance(1, in: 5) { members.append(#""extra": {"nested": [1, 2.5, "x", null, {"deep": true}]}"#) }
        members.shuffle(using: &random)
        return Array(("{" + members.joined(separator: random.pick([", ", ",", " ,\n"])) + "}").utf8)
    }

    /// A Refiner webhook payload with random fields left out, `null`, empty or of the wrong type.
    static func webhookJSON(using random: inout SeededRandom) -> [UInt8] {
        func text() -> String { quoted(RandomValue.string(using: &random), using: &random) }
        func maybe(_ value: String) -> String {
            random.chance(1, in: 8) ? random.pick(["null", "1", #""""#, "[]", "{}"]) : value
        }
        func values() -> String {
            switch Int.random(in: 0..<8, using: &random) {
            case 0: return "[]"
            case 1: return "null"
            case 2: return #"["a"]"#
            default:
                return "{"
                    + (0..<Int.random(in: 0...4, using: &random)).map { _ in
                        let value =
                            random.chance(1, in: 2)
                            ? numberText(using: &random)
                            : random.pick([text(), "null", "true", "[1, \"a\"]", #"{"x": [null]}"#, text()])
                        return "\(random.pick([text(), #""plan""#, #""team_size""#])): \(value)"
                    }.joined(separator: ", ") + "}"
            }
        }
        var members = [
            #""triggered_event": \#(maybe(random.pick([#""Completed Survey""#, #""Showed Survey""#])))"#,
            #""uuid": \#(maybe(text()))"#, #""remote_id": \#(maybe(text()))"#, #""email": \#(maybe(text()))"#,
            #""account": \#(maybe(#"{"uuid": \#(text()), "remote_id": \#(maybe(text())), "attributes": \#(values())}"#))"#,
            #""form": \#(maybe(#"{"uuid": \#(maybe(text())), "name": \#(text())}"#))"#,
            #""response": \#(maybe(#"{"uuid": \#(maybe(text())), "completed_at": \#(maybe(#""2022-10-18T05:05:45.000000Z""#)), "data": \#(values())}"#))"#,
            #""contact": {"attributes": {"a": [1, {"b": null}]}}"#,
        ]
        members.shuffle(using: &random)
        return Array(("{" + members.joined(separator: ", ") + "}").utf8)
    }

    /// A number in one of JSON's spellings: integers at the edges of 64 bits, fractions, exponents.
    static func numberText(using random: inout SeededRandom) -> String {
        switch Int.random(in: 0..<8, using: &random) {
        case 0: return String(RandomValue.integer(using: &random))
        case 1:
            return random.pick([
                "0", "-0", "10.0", "1e1", "1E2", "0.1e1", "100e-2", "9007199254740993", "-9223372036854775808",
                "9223372036854775807", "9223372036854775808", "12345678901234567890", "1.5", "-2.25", "1e21",
                "2.5e-3", "0.0", "-0.0", "1e308",
            ])
        case 2: return "\(Double.random(in: -1e6...1e6, using: &random))"
        default: return String(Int.random(in: -1000...1000, using: &random))
        }
    }

    /// `text` as a JSON string, with some characters spelled as escapes (`\u00e9`, surrogate pairs, `\/`).
    static func quoted(_ text: String, using random: inout SeededRandom) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += random.chance(1, in: 2) ? "\\n" : "\\u000A"
            case "/": result += random.chance(1, in: 2) ? "\\/" : "/"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            case _ where random.chance(1, in: 6):
                for unit in String(scalar).utf16 {
                    result += String(format: random.pick(["\\u%04x", "\\u%04X"]), unit)
                }
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// `bytes` with one damage: a byte changed, removed or added, a cut, a piece repeated, an escape broken.
    static func mutate(_ bytes: [UInt8], using random: inout SeededRandom) -> [UInt8] {
        guard !bytes.isEmpty else { return bytes }
        var bytes = bytes
        let position = Int.random(in: 0..<bytes.count, using: &random)
        let interesting: [UInt8] =
            Array(#"{}[]",:\"0123456789-+.eEtfnu "#.utf8) + [
                0x00, 0x0A, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
            ]
        switch Int.random(in: 0..<7, using: &random) {
        case 0: bytes[position] = random.pick(interesting)
        case 1: bytes.remove(at: position)
        case 2: bytes.insert(random.pick(interesting), at: position)
        case 3: bytes.removeSubrange(position...)
        case 4:
            let end = min(bytes.count, position + Int.random(in: 1...20, using: &random))
            bytes.insert(contentsOf: bytes[position..<end], at: position)
        case 5:
            bytes.insert(
                contentsOf: Array(
                    random.pick([#"\ud800"#, #"\udc00"#, #"\ud83d\ude00"#, #"\u12"#, #"\x"#, "\\"]).utf8), at: position)
        default:
            // Swap a value for one of another type where a member's value starts.
            if let colon = bytes[position...].firstIndex(of: UInt8(ascii: ":")), colon + 1 < bytes.count {
                bytes.insert(
                    contentsOf: Array(random.pick([" null,", " 1,", #" "x","#, " [],", " {},", " true,"]).utf8),
                    at: colon + 1)
                if random.chance(1, in: 2) { _ = bytes.removeLast() }
            }
        }
        return bytes
    }
}

/// Words for a `DecodingError` that name the field: how `SurveyResponse(json:)` worded errors when it read
/// through `JSONDecoder`, which the reader's errors must match.
enum DecodingErrorWords {
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\(path(context.codingPath + [key]))'"
        case .valueNotFound(_, let context):
            return "'\(path(context.codingPath))' is null but must have a value"
        case .typeMismatch(let type, let context):
            return "'\(path(context.codingPath))' has the wrong type (expected \(typeName(type)))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                var detail = "not valid JSON"
                if let underlying = context.underlyingError { detail += " (\(underlying))" }
                return detail
            }
            // JSONDecoder reports syntax errors found while decoding a value at the value's path.
            if context.debugDescription == "The given data was not valid JSON." { return "not valid JSON" }
            return "'\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text.isEmpty ? "(top level)" : text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Double.Type: return "a number"
        case is [Any].Type: return "an array"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") || name.contains("Keyed") { return "an object" }
            return name
        }
    }
}
