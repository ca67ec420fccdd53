import Foundation
import RefinerSegment
import Testing

/// A collected profile past the message limit is split into several calls; only a response whose own
/// answers cannot fit is rejected.
struct ProfileSplitTests {
    private func accountQuestion(_ index: Int) -> SurveyResponse {
        SurveyResponse(
            id: "resp-\(index)", completedAt: Date(timeIntervalSince1970: 1_795_600_000 + Double(index)),
            survey: Survey(id: "s\(index)"), user: User(id: "user-\(index % 10)", email: "u\(index % 10)@example.com"),
            account: Account(id: "acme"),
            answers: [
                Answer(
                    question: Question(
                        id: "q\(index)", text: "Account question number \(index) about the company?",
                        attribution: .account),
                    value: .string("answer \(index) with a few words of text")),
                Answer(question: Question(id: "u\(index)", text: "Your role?"), value: "CEO"),
            ])
    }

    @Test func threeThousandAccountQuestionsAreNeverRejected() throws {
        let builder = try SegmentCallBuilder()
        var store = InMemoryProfileStore()
        var splitSeen = false
        for index in 0..<3000 {
            let messages = try store.process(accountQuestion(index), with: builder)
            let groups = messages.filter { $0.kind == .group }
            #expect(messages.allSatisfy { $0.byteCount <= 32_768 }, "response \(index)")
            #expect(
                groups.map(\.messageID)
                    == groups.indices.map {
                        $0 == 0 ? "refiner-resp-\(index)-group" : "refiner-resp-\(index)-group-\($0 + 1)"
                    })
            if groups.count > 1 { splitSeen = true }
            // The trait this response changed is in the first group call.
            let first = try #require(groups.first).description
            #expect(
                first.contains("\"refiner_account_question_number_\(index)_about_the_company\":"), "response \(index)")
            if index == 2999 {
                // Together the parts carry the whole account, each trait once.
                var union: [String: String] = [:]
                for group in groups {
                    for (key, value) in try #require(try jsonObject(group)["traits"] as? [String: Any]) {
                        #expect(union[key] == nil, "\(key) twice")
                        union[key] = value as? String
                    }
                }
                #expect(union.count == 3000)
                #expect(
                    union
                        == store.accounts["acme"]?.traits.values.reduce(into: [:]) { $0[$1.key] = $1.value.stringValue }
                )
            }
        }
        #expect(splitSeen)
        // Deterministic: the same profile splits the same way.
        let again = try SegmentCallBuilder().makeMessages(
            for: accountQuestion(2999), profile: store.profile(for: accountQuestion(2999)))
        #expect(again == (try store.process(accountQuestion(2999), with: builder)))
    }

    @Test func aResponseWhoseOwnAnswersCannotFitIsRejectedAndNothingIsStored() throws {
        let builder = try SegmentCallBuilder()
        var store = InMemoryProfileStore()
        let huge = SurveyResponse(
            id: "resp-huge", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: "u1"), account: Account(id: "acme"),
            answers: [
                Answer(
                    question: Question(id: "q1", text: "Essay?", attribution: .account),
                    value: .string(String(repeating: "x", count: 40_000))),
                Answer(question: Question(id: "q2", text: "Role?"), value: "CEO"),
            ])
        let error = #expect(throws: RefinerSegmentError.self) { try store.process(huge, with: builder) }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.responseID == "resp-huge")
        #expect(error?.detail.contains("own answers") == true, "\(String(describing: error))")
        #expect(error?.detail.contains("refiner_essay") == true, "\(String(describing: error))")
        #expect(store == InMemoryProfileStore())
    }
}

extension AnswerValue {
    fileprivate var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}
