/// The resolved trait keys of recently seen surveys, so that a survey's questions are normalized once,
/// not on every response. Keyed by survey id; an entry is used only when the response lists exactly the
/// same questions (ids, texts, custom names) in the same order, so a changed survey is simply resolved again.
///
/// Bounded: when it holds ``capacity`` surveys it starts afresh, which costs one normalization per survey.
final class SurveyKeyCache: Sendable {
    static let capacity = 1024

    private struct Entry {
        var questions: [(id: String, text: String, propertyName: String?)]
        var keys: ResolvedKeys
    }

    private let entries = Locked<[String: Entry]>([:])

    /// The cached keys of `answers`' questions in survey `surveyID`, or `nil`.
    func keys(surveyID: String, answers: [Answer]) -> ResolvedKeys? {
        entries.withLock { entries -> ResolvedKeys? in
            guard let entry = entries[surveyID], entry.questions.count == answers.count else { return nil }
            for index in answers.indices {
                guard entry.questions[index].id == answers[index].question.id,
                    entry.questions[index].text == answers[index].question.text,
                    entry.questions[index].propertyName == answers[index].question.propertyName
                else { return nil }
            }
            return entry.keys
        }
    }

    /// Remembers the keys of `answers`' questions in survey `surveyID`.
    func store(_ keys: ResolvedKeys, surveyID: String, answers: [Answer]) {
        let questions = answers.map { ($0.question.id, $0.question.text, $0.question.propertyName) }
        entries.withLock { entries in
            if entries.count >= Self.capacity, entries[surveyID] == nil { entries.removeAll(keepingCapacity: true) }
            entries[surveyID] = Entry(questions: questions, keys: keys)
        }
    }
}

/// A survey's resolved trait keys, one per answer in the response's order, and that order sorted by key, so
/// that traits are built in key order without comparing strings.
struct ResolvedKeys: Sendable {
    /// The key of each answer, in the response's order.
    let keys: [String]
    /// The answers' positions, sorted by their keys (the keys are distinct).
    let sortedOrder: [Int]

    init(_ keys: [String]) {
        self.keys = keys
        self.sortedOrder = keys.indices.sorted { keys[$0] < keys[$1] }
    }
}
