/// The resolved trait keys of recently seen surveys, so that a survey's questions are normalized once,
/// not on every response. Keyed by survey id; an entry is used only when the response lists exactly the
/// same questions (ids, texts, custom names) in the same order, so a changed survey is simply resolved again.
///
/// Bounded: when it holds ``capacity`` surveys it starts afresh, which costs one normalization per survey.
final class SurveyKeyCache: Sendable {
    static let capacity = 1024

    private struct Entry {
        var questions: [(id: String, text: String, propertyName: String?)]
        var keys: [String]
    }

    private let entries = Locked<[String: Entry]>([:])

    /// The cached keys of `answers`' questions in survey `surveyID`, or `nil`.
    func keys(surveyID: String, answers: [Answer]) -> [String]? {
        entries.withLock { entries -> [String]? in
            guard let entry = entries[surveyID], entry.questions.count == answers.count else { return nil }
            for (cached, answer) in zip(entry.questions, answers) {
                let question = answer.question
                guard cached.id == question.id, cached.text == question.text,
                    cached.propertyName == question.propertyName
                else { return nil }
            }
            return entry.keys
        }
    }

    /// Remembers the keys of `answers`' questions in survey `surveyID`.
    func store(_ keys: [String], surveyID: String, answers: [Answer]) {
        let questions = answers.map { ($0.question.id, $0.question.text, $0.question.propertyName) }
        entries.withLock { entries in
            if entries.count >= Self.capacity, entries[surveyID] == nil { entries.removeAll(keepingCapacity: true) }
            entries[surveyID] = Entry(questions: questions, keys: keys)
        }
    }
}
