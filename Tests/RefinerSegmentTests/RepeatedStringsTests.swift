import Foundation
import Testing

@testable import RefinerSegment

/// Reading responses one after another with ``RepeatedStrings`` (the command-line tool's read loop) gives the
/// values and errors of reading each on its own, whether the strings repeat, change, or have escapes.
struct RepeatedStringsTests {
    private func response(id: String, survey: String = "Onboarding", questions: [(id: String, text: String)]) -> [UInt8]
    {
        let answers = questions.map { question in
            #"{"question": {"id": "\#(question.id)", "text": "\#(question.text)", "property": "p\#(question.id)"}, "value": "v"}"#
        }
        return Array(
            #"{"id": "\#(id)", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s", "name": "\#(survey)"}, "user": {"id": "u"}, "answers": [\#(answers.joined(separator: ","))]}"#
                .utf8)
    }

    @Test func eachResponseReadsAsItWouldAlone() throws {
        let many = (0..<50).map { (id: "q\($0)", text: "What is question number \($0)?") }
        let records = [
            response(id: "r1", questions: [("q1", "How big is your team?"), ("q2", "Which plan?")]),
            // The same questions: reused.
            response(id: "r2", questions: [("q1", "How big is your team?"), ("q2", "Which plan?")]),
            // A text one byte longer, one of the same length that differs, another survey name.
            response(
                id: "r3", survey: "Onboardinh", questions: [("q1", "How big is your team??"), ("q2", "Which plaN?")]),
            // Escapes, which are never reused, and back to the text without them.
            response(id: "r4", questions: [("q1", #"How \"big\" is your team?"#), ("q2", "Which plan?")]),
            response(id: "r5", questions: [("q1", "How big is your team?"), ("q2", "")]),
            // Fewer answers, then more than the places kept (42 answers).
            response(id: "r6", questions: [("q2", "How big is your team?")]),
            response(id: "r7", questions: many),
            response(id: "r8", questions: many),
        ]
        let repeated = RepeatedStrings()
        for record in records {
            let alone = try SurveyResponse(json: record)
            let read = try SurveyResponse(jsonOrRefinerWebhook: record, repeated: repeated)
            #expect(read == alone)
        }
    }

    @Test func aRepeatedStringIsTheSameStorage() throws {
        let repeated = RepeatedStrings()
        let text = "A question text longer than fifteen bytes"
        let first = try SurveyResponse(
            jsonOrRefinerWebhook: response(id: "r1", questions: [("q1", text)]), repeated: repeated)
        let second = try SurveyResponse(
            jsonOrRefinerWebhook: response(id: "r2", questions: [("q1", text)]), repeated: repeated)
        var one = try #require(first.answers.first?.question.text)
        var other = try #require(second.answers.first?.question.text)
        let firstAddress = one.withUTF8 { UInt(bitPattern: $0.baseAddress) }
        let secondAddress = other.withUTF8 { UInt(bitPattern: $0.baseAddress) }
        #expect(firstAddress == secondAddress)
    }

    @Test func errorsAreThoseOfReadingAlone() {
        let repeated = RepeatedStrings()
        _ = try? SurveyResponse(
            jsonOrRefinerWebhook: response(id: "r1", questions: [("q1", "Text")]), repeated: repeated)
        let broken = Array(
            #"{"id": "r2", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {"id": "u"}, "answers": [{"question": {"id": "q1", "text": 3}}]}"#
                .utf8)
        let alone = #expect(throws: RefinerSegmentError.self) { try SurveyResponse(json: broken) }
        let read = #expect(throws: RefinerSegmentError.self) {
            try SurveyResponse(jsonOrRefinerWebhook: broken, repeated: repeated)
        }
        #expect(alone?.detail == read?.detail)
        #expect(read?.detail.contains("answers[0].question.text") == true)
    }
}
