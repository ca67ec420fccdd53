extension TraitKeyNormalizer {
    /// The trait keys of a survey's questions, in order, with collisions told apart.
    ///
    /// Custom property names are taken first, as given; two that give the same key are a configuration
    /// error. Keys from question texts follow in question order: the first keeps its key, the second gets
    /// `_2`, the third `_3` (cut to stay within the limit), so a survey's keys are the same for every
    /// response that lists its questions in the same order. Call this when a survey is defined to find
    /// colliding custom names early.
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/collidingPropertyNames``
    ///   naming both questions.
    public func keys(for questions: [Question]) throws(RefinerSegmentError) -> [String] {
        var keys = [String](repeating: "", count: questions.count)
        var owners: [String: Int] = [:]
        owners.reserveCapacity(questions.count)
        for (index, question) in questions.enumerated() {
            guard let propertyName = question.propertyName else { continue }
            let key = self.key(for: propertyName, questionID: question.id)
            if let owner = owners[key] {
                throw RefinerSegmentError(
                    code: .collidingPropertyNames,
                    detail: "questions '\(questions[owner].id)' (property '\(questions[owner].propertyName ?? "")') "
                        + "and '\(question.id)' (property '\(propertyName)') both give the trait key '\(key)'"
                )
            }
            owners[key] = index
            keys[index] = key
        }
        for (index, question) in questions.enumerated() where question.propertyName == nil {
            let base = keyBytes(for: question.text, questionID: question.id)
            var key = String(decoding: base, as: UTF8.self)
            var ordinal = 2
            while owners[key] != nil {
                key = suffixed(base, ordinal)
                ordinal += 1
            }
            owners[key] = index
            keys[index] = key
        }
        return keys
    }

    /// `base` with `_<ordinal>` after it, the base cut at a word boundary when both would not fit.
    private func suffixed(_ base: [UInt8], _ ordinal: Int) -> String {
        let suffix = Array("_\(ordinal)".utf8)
        var key = base
        // The configuration leaves at least 8 bytes after the prefix, so one body byte always stays.
        Self.cap(&key, to: max(maximumLength - suffix.count, prefix.utf8.count + 1), keeping: prefix.utf8.count)
        key.append(contentsOf: suffix)
        return String(decoding: key, as: UTF8.self)
    }
}
