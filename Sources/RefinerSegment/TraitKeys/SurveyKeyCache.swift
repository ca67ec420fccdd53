/// The resolved trait keys of recently seen surveys, so that a survey's questions are normalized once,
/// not on every response. Keyed by survey id; an entry is used only when the response lists exactly the
/// same questions (ids, texts, custom names, attributions) in the same order, so a changed survey is simply resolved again.
///
/// Bounded: when it holds ``capacity`` surveys it starts afresh, which costs one normalization per survey.
final class SurveyKeyCache: Sendable {
    static let capacity = 1024

    private struct Entry {
        var questions: [(id: String, text: String, propertyName: String?, attribution: Attribution)]
        var keys: ResolvedKeys

        /// The keys, when `answers` list exactly these questions in this order.
        func keys(matching answers: [Answer]) -> ResolvedKeys? {
            guard questions.count == answers.count else { return nil }
            // Over both arrays' buffers: no bounds checks, nothing retained per question.
            let matches = questions.withUnsafeBufferPointer { questions in
                answers.withUnsafeBufferPointer { answers in
                    for index in answers.indices {
                        guard questions[index].id == answers[index].question.id,
                            questions[index].text == answers[index].question.text,
                            questions[index].propertyName == answers[index].question.propertyName,
                            questions[index].attribution == answers[index].question.attribution
                        else { return false }
                    }
                    return true
                }
            }
            return matches ? keys : nil
        }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// The survey looked up or stored last, and its entry: a backfill or a busy survey asks for the same
        /// survey again and again, and comparing its id (the same storage, usually) costs less than hashing it.
        /// Meaningful only while ``last`` is there (not an optional: comparing a `String?` copies it).
        var lastSurveyID = ""
        var last: Entry?
    }

    private let state = Locked<State>(State())

    /// The cached keys of `answers`' questions in survey `surveyID`, or `nil`.
    func keys(surveyID: String, answers: [Answer]) -> ResolvedKeys? {
        state.withLock { state -> ResolvedKeys? in
            // The last entry is compared where it is (a copy of it would retain its three arrays).
            if case .some = state.last, state.lastSurveyID == surveyID { return state.last?.keys(matching: answers) }
            guard let found = state.entries[surveyID] else { return nil }
            state.lastSurveyID = surveyID
            state.last = found
            return found.keys(matching: answers)
        }
    }

    /// Remembers the keys of `answers`' questions in survey `surveyID`. Only keys of a validated response
    /// (question ids non-empty and distinct): a hit tells the builder the ids need no checking again.
    func store(_ keys: ResolvedKeys, surveyID: String, answers: [Answer]) {
        let questions = answers.map {
            ($0.question.id, $0.question.text, $0.question.propertyName, $0.question.attribution)
        }
        let entry = Entry(questions: questions, keys: keys)
        state.withLock { state in
            if state.entries.count >= Self.capacity, state.entries[surveyID] == nil {
                state.entries.removeAll(keepingCapacity: true)
            }
            state.entries[surveyID] = entry
            state.lastSurveyID = surveyID
            state.last = entry
        }
    }
}

/// A survey's resolved trait keys, one per answer in the response's order, and that order sorted by key, so
/// that traits are built in key order without comparing strings.
///
/// A class: it is immutable, and a copy (the cache's lookup, a profile's view of a response) is one retain.
final class ResolvedKeys: Sendable {
    /// The key of each answer, in the response's order.
    let keys: [String]
    /// The answers' positions sorted by their keys (the keys are distinct), then the same without the
    /// account-attributed questions (the user's side of a response with an account), then the
    /// account-attributed ones (the account's side): one array for the three orders.
    let positions: [Int]
    /// Where the user's side starts in ``positions``.
    let userStart: Int
    /// Where the account's side starts in ``positions``.
    let accountStart: Int

    /// The keys of questions with these attributions (one per key, in the same order).
    init(_ keys: [String], attributions: [Attribution]) {
        self.keys = keys
        let sortedOrder = keys.indices.sorted { keys[$0] < keys[$1] }
        let userOrder = sortedOrder.filter { attributions[$0] != .account }
        let accountOrder = sortedOrder.filter { attributions[$0] == .account }
        self.positions = sortedOrder + userOrder + accountOrder
        self.userStart = sortedOrder.count
        self.accountStart = sortedOrder.count + userOrder.count
    }

    /// The answers' positions, sorted by their keys.
    var sortedOrder: ArraySlice<Int> { positions[0..<userStart] }
    /// Where in ``positions`` a side's order is: the user's (`ofAccount` false) or the account's, of a
    /// response with an account (`hasAccount`); without one, every answer is the user's.
    func side(hasAccount: Bool, ofAccount: Bool) -> Range<Int> {
        guard hasAccount else { return 0..<userStart }
        return ofAccount ? accountStart..<positions.count : userStart..<accountStart
    }
}
