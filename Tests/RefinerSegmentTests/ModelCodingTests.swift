import Foundation
import Testing

@testable import RefinerSegment

struct ModelCodingTests {
    /// The JSON form of a response, exactly as DESIGN.md gives it.
    static let designLine = """
        {"id": "resp_123", "completedAt": "2026-11-20T10:15:00.000Z",
         "survey": {"id": "onboarding", "name": "Onboarding"},
         "user": {"id": "your-user-id", "anonymousId": null, "email": "john.doe@example.com"},
         "account": {"id": "your-account-id"},
         "answers": [
           {"question": {"id": "q1", "text": "What is your job role?", "attribution": "user"}, "value": "CEO"},
           {"question": {"id": "q2", "text": "How big is your team?", "attribution": "user"}, "value": "10+"},
           {"question": {"id": "q3", "text": "How many employees work at your company?", "property": "employee_count",
                         "attribution": "account"}, "value": "1000+"},
           {"question": {"id": "q4", "text": "Which industry are you in?", "property": "industry",
                         "attribution": "account"}, "value": "acounting"}]}
        """

    @Test
    func designJSONFormDecodesToTheSeedResponse() throws {
        let response = try SurveyResponse(json: Array(Self.designLine.utf8))
        #expect(response == seedResponse())
    }

    @Test
    func encodingRoundTrips() throws {
        let response = seedResponse()
        let data = try JSONEncoder().encode(response)
        #expect(try JSONDecoder().decode(SurveyResponse.self, from: data) == response)
        let object = try jsonObject([UInt8](data))
        #expect(object["completedAt"] as? String == "2026-11-20T10:15:00.000Z")
        let user = try #require(object["user"] as? [String: Any])
        #expect(user["id"] as? String == "your-user-id")
        let answers = try #require(object["answers"] as? [[String: Any]])
        let question = try #require(answers[2]["question"] as? [String: Any])
        #expect(question["property"] as? String == "employee_count")
        #expect(question["attribution"] as? String == "account")
    }

    @Test(arguments: [
        (#""text""#, AnswerValue.string("text")),
        ("10", .integer(10)),
        ("-3", .integer(-3)),
        ("9223372036854775807", .integer(.max)),
        ("4.5", .decimal(4.5)),
        ("1e-3", .decimal(0.001)),
        ("true", .boolean(true)),
        ("false", .boolean(false)),
        (#"["a","b"]"#, .strings(["a", "b"])),
        ("[]", .strings([])),
    ])
    func answerValuesDecodeByJSONType(json: String, value: AnswerValue) throws {
        let line = #"{"question": {"id": "q", "text": "Q"}, "value": "# + json + "}"
        let answer = try JSONDecoder().decode(Answer.self, from: Data(line.utf8))
        #expect(answer.value == value)
    }

    @Test(arguments: [
        #"{"question": {"id": "q", "text": "Q"}, "value": null}"#, #"{"question": {"id": "q", "text": "Q"}}"#,
    ])
    func nullOrMissingValueIsSkipped(line: String) throws {
        let answer = try JSONDecoder().decode(Answer.self, from: Data(line.utf8))
        #expect(answer.value == nil)
        #expect(answer.question.attribution == .user)
    }

    @Test
    func dateQuestionsReadISOStrings() throws {
        let line = #"{"question": {"id": "q", "text": "When?", "kind": "date"}, "value": "2026-11-20T10:15:00Z"}"#
        let answer = try JSONDecoder().decode(Answer.self, from: Data(line.utf8))
        #expect(answer.value == .date(seedDate))
        #expect(answer.question.kind == .date)
    }

    @Test
    func unknownQuestionKindsRoundTrip() throws {
        let line = #"{"question": {"id": "q", "text": "Q", "kind": "matrix"}, "value": "x"}"#
        let answer = try JSONDecoder().decode(Answer.self, from: Data(line.utf8))
        #expect(answer.question.kind?.rawValue == "matrix")
        let again = try JSONDecoder().decode(Answer.self, from: JSONEncoder().encode(answer))
        #expect(again == answer)
    }

    @Test(arguments: [
        (#"{"id": "r"}"#, "completedAt"),
        (#"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}}"#, "user"),
        (#"{"id": "r", "completedAt": "soon", "survey": {"id": "s"}, "user": {}}"#, "completedAt"),
        (#"{"id": 5, "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#, "id"),
        (
            #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q"}, "value": 1}]}"#,
            "answers[0].question.text"
        ),
        (
            #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q", "text": "t", "attribution": "team"}}]}"#,
            "answers[0].question.attribution"
        ),
        (
            #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q", "text": "t"}, "value": {"a": 1}}]}"#,
            "answers[0].value"
        ),
        (
            #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}, "answers": [{"question": {"id": "q", "text": "t"}, "value": 1e999}]}"#,
            "answers[0].value"
        ),
        (#"{"id": "r", "completedAt""#, "not valid JSON"),
    ])
    func badInputNamesTheField(line: String, field: String) {
        let error = #expect(throws: RefinerSegmentError.self) { try SurveyResponse(json: Array(line.utf8)) }
        #expect(error?.code == .invalidInput)
        #expect(error?.description.contains(field) == true, "\(error?.description ?? "")")
    }

    @Test
    func traitsKeepKeysSortedAndLatestWins() {
        var traits: Traits = ["b": 1, "a": "x"]
        traits["c"] = true
        traits["a"] = "y"
        #expect(traits.map(\.key) == ["a", "b", "c"])
        #expect(traits["a"] == "y")
        traits["b"] = nil
        #expect(traits.map(\.key) == ["a", "c"])
        #expect(traits.merging(["a": "z", "d": 2.5])["a"] == "z")
    }

    @Test
    func profilesAreCodable() throws {
        var store = InMemoryProfileStore()
        _ = try store.process(seedResponse(), with: SegmentCallBuilder())
        let decoded = try JSONDecoder().decode(InMemoryProfileStore.self, from: JSONEncoder().encode(store))
        #expect(decoded == store)
        #expect(decoded.accounts["your-account-id"]?.traits["refiner_industry"] == "acounting")
    }
}

struct ErrorDescriptionTests {
    @Test(arguments: ["line\nbreak", "carriage\rreturn", "escape\u{1B}[2J", "separator\u{2028}here", "c1\u{85}next"])
    func descriptionsStayOnOneLineWhateverTheInputQuoted(text: String) {
        var response = seedResponse()
        response.answers[0].question.text = text
        response.answers[0].question.id = ""
        let error = #expect(throws: RefinerSegmentError.self) {
            try SegmentCallBuilder().process(response, profile: CollectedProfile())
        }
        let description = error?.description ?? ""
        #expect(!description.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" })
        #expect(!description.unicodeScalars.contains { (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 })
        #expect(error?.detail.contains(text) == true, "the detail keeps the input as it was")
    }
}
