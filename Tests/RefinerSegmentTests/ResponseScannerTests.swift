import Foundation
import Testing

@testable import RefinerSegment

/// The one-pass scanner of the usual response shape (``ResponseScanner``) against the general path (the tape and
/// the decoders on ``JSONReader``): where the scanner reads a document, the general path reads the same value;
/// where the general path fails, the scanner gives up, so errors keep coming from the general path alone.
struct ResponseScannerTests {
    /// The general path alone, as `SurveyResponse(json:)` read every document before the scanner.
    private func general(_ bytes: [UInt8]) -> SurveyResponse? {
        bytes.withUnsafeBufferPointer { buffer in
            try? JSONReader.withDocument(buffer: buffer) { reader throws(JSONDecodingError) in
                try SurveyResponse(reader, JSONReader.root)
            }
        }
    }

    private func scanned(_ bytes: [UInt8], repeated: RepeatedStrings? = nil) -> SurveyResponse? {
        bytes.withUnsafeBufferPointer { ResponseScanner.response(in: $0, repeated: repeated) }
    }

    @Test func randomAndMutatedResponsesReadAsTheGeneralPathReadsThem() async {
        let seed = FuzzSettings.seed
        var counts = (scanned: 0, leftToGeneral: 0, invalid: 0)
        let repeated = RepeatedStrings()
        for index in 0..<FuzzSettings.iterations(1_500) {
            var random = SeededRandom(seed: seed, case: index)
            let valid = Self.usualResponse(using: &random)
            for input in [valid] + (0..<3).map({ _ in DifferentialInput.mutate(valid, using: &random) }) {
                let origin = FuzzSettings.origin(seed: seed, case: index)
                let expected = general(input)
                // Alone and in a read loop that reuses the last response's strings, as the tool reads.
                for read in [scanned(input), scanned(input, repeated: repeated)] {
                    if let read {
                        #expect(read == expected, "\(origin): \(String(decoding: input, as: UTF8.self))")
                    }
                }
                switch (scanned(input), expected) {
                case (.some, _): counts.scanned += 1
                case (nil, .some): counts.leftToGeneral += 1
                case (nil, nil): counts.invalid += 1
                }
            }
            await FuzzSettings.shareThePool()
        }
        // The inputs reach every outcome, or the test would compare less than it claims.
        #expect(counts.scanned > 500 && counts.leftToGeneral > 20 && counts.invalid > 200, "\(counts)")
    }

    @Test func theBenchmarksResponsesTakeTheScannerPath() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let response = SurveyResponse(
            id: "resp_1", completedAt: Date(timeIntervalSince1970: 1_795_000_000.25),
            survey: Survey(id: "survey-1", name: "Onboarding — 2026"),
            user: User(id: "user-1", email: "person@example.com"),
            account: Account(id: "account-1", traits: ["plan": "pro", "seats": 12, "ratio": 0.75, "beta": true]),
            answers: [
                Answer(question: Question(id: "q1", text: "How big is your team?", kind: .number), value: 12),
                Answer(question: Question(id: "q2", text: "Which plan?", kind: .singleChoice), value: "Pro"),
                Answer(
                    question: Question(id: "q3", text: "Tools", kind: .multipleChoice), value: .strings(["a", "b"])),
                Answer(question: Question(id: "q4", text: "Score", propertyName: "score"), value: -2.5),
                Answer(
                    question: Question(id: "q5", text: "Renewal", attribution: .account, kind: .date),
                    value: .date(Date(timeIntervalSince1970: 1_790_000_000))),
                Answer(question: Question(id: "q6", text: "Skipped", kind: Question.Kind(rawValue: "nps")), value: nil),
                Answer(question: Question(id: "q7", text: "Agree?", kind: .boolean), value: false),
            ])
        let bytes = Array(try encoder.encode(response))
        let read = try #require(scanned(bytes))
        #expect(read == response)
        #expect(read == general(bytes))
        #expect(try SurveyResponse(json: bytes) == response)
    }

    @Test(arguments: [
        // A string with an escape, a repeated member, a member the form does not have.
        #"{"id": "r\u0031", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#,
        #"{"id": "r1", "id": "r2", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#,
        #"{"id": "r1", "extra": 1, "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#,
        // A trailing comma, a byte order mark, a webhook.
        #"{"id": "r1", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {},}"#,
        "\u{FEFF}" + #"{"id": "r1", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#,
        #"{"triggered_event": "Completed Survey", "response": {}, "form": {}}"#,
        // An attribution the model does not have, traits with a repeated name.
        #"{"id": "r1", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q", "text": "t", "attribution": "team"}}]}"#,
        #"{"id": "r1", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "account": {"id": "a", "traits": {"x": null, "x": 1}}}"#,
    ])
    func unusualDocumentsAreLeftToTheGeneralPath(json: String) {
        #expect(scanned(Array(json.utf8)) == nil)
    }

    @Test(arguments: [
        // Every member in another order, spaces everywhere JSON allows them, `null` where a value is optional.
        " {\n\"user\" : { \"email\" : null } , \"answers\" : null , \"survey\" : { \"name\" : null , \"id\" : \"s\" } , \"completedAt\" : \"2026-11-20 10:15:00\" , \"id\" : \"r1\" , \"account\" : null }\r\n",
        #"{"id":"r1","completedAt":"2026-11-20T10:15:00+02:00","survey":{"id":"s"},"user":{"anonymousId":"x"},"answers":[{"value":"2026-11-01","question":{"kind":"date","text":"When?","id":"q"}},{"question":{"id":"q2","text":"n","attribution":null,"kind":null,"property":null},"value":1e2}]}"#,
        #"{"id": "r1", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q", "text": "日本語 é"}, "value": [ ]}, {"question": {"id": "q", "text": "t"}, "value": -0.0}, {"question": {"id": "q", "text": "t"}, "value": 9223372036854775808}]}"#,
    ])
    func unusualSpacingAndOrderStillScanAndReadTheSame(json: String) throws {
        let bytes = Array(json.utf8)
        let read = try #require(scanned(bytes))
        #expect(read == general(bytes))
    }

    /// A response in the usual form: no escapes, the members the `Codable` conformance writes in any order,
    /// optional ones present, absent or `null`, answers of every kind of value, spacing that varies.
    static func usualResponse(using random: inout SeededRandom) -> [UInt8] {
        let space = random.pick(["", " ", "\n  "])
        func text() -> String {
            let words = ["plan", "Team size", "Ünïcode", "日本", "emoji 😀", "", "a/b", "x y z", "0.5"]
            return "\"" + random.pick(words)
                + (random.chance(1, in: 2) ? " \(Int.random(in: 0...99, using: &random))" : "")
                + "\""
        }
        func optional(_ value: String) -> String? {
            switch Int.random(in: 0..<6, using: &random) {
            case 0: return nil
            case 1: return "null"
            default: return value
            }
        }
        func object(_ members: [(String, String?)]) -> String {
            var present = members.compactMap { name, value in value.map { "\"\(name)\":\(space)\($0)" } }
            present.shuffle(using: &random)
            return "{" + space + present.joined(separator: "," + space) + space + "}"
        }
        func value() -> String {
            switch Int.random(in: 0..<8, using: &random) {
            case 0, 1: return text()
            case 2: return DifferentialInput.numberText(using: &random)
            case 3: return random.pick(["true", "false", "null"])
            case 4:
                return "[" + (0..<Int.random(in: 0...3, using: &random)).map { _ in text() }.joined(separator: ",")
                    + "]"
            case 5: return "\"" + random.pick(["2026-11-20T10:15:00Z", "2026-11-20", "soon"]) + "\""
            default: return String(Int.random(in: -1_000...1_000, using: &random))
            }
        }
        var answers: [String] = []
        for position in 0..<Int.random(in: 0...8, using: &random) {
            let question = object([
                ("id", "\"q\(position)\""), ("text", text()), ("property", optional(text())),
                ("attribution", optional(random.pick(["\"user\"", "\"account\""]))),
                (
                    "kind",
                    optional(random.pick(["\"date\"", "\"text\"", "\"number\"", "\"nps\"", "\"multiple_choice\""]))
                ),
            ])
            answers.append(object([("question", question), ("value", random.chance(5, in: 6) ? value() : nil)]))
        }
        var traits: [(String, String?)] = []
        for index in 0..<Int.random(in: 0...3, using: &random) { traits.append(("trait \(index)", value())) }
        let account = object([("id", text()), ("traits", optional(object(traits)))])
        let response = object([
            ("id", text()),
            (
                "completedAt",
                "\"" + random.pick(["2026-11-20T10:15:00.000Z", "2026-11-20T10:15:00+02:00", "soon"]) + "\""
            ),
            ("survey", object([("id", text()), ("name", optional(text()))])),
            (
                "user",
                object([("id", optional(text())), ("anonymousId", optional(text())), ("email", optional(text()))])
            ),
            ("account", optional(account)),
            ("answers", optional("[" + answers.joined(separator: "," + space) + "]")),
        ])
        return Array(response.utf8)
    }
}
