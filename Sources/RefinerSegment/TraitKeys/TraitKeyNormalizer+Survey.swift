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
        try resolveKeys(count: questions.count) { questions[$0] }
    }

    /// ``keys(for:)`` over questions read by index, so callers need not gather them into an array first.
    func resolveKeys(count: Int, question questionAt: (Int) -> Question) throws(RefinerSegmentError) -> [String] {
        var keys = [String](repeating: "", count: count)
        var taken = TakenKeys(capacity: count)
        var hasCustomNames = false
        for index in 0..<count {
            let question = questionAt(index)
            guard let propertyName = question.propertyName else { continue }
            hasCustomNames = true
            let key = self.key(for: propertyName, questionID: question.id)
            if let owner = taken.owner(of: key) {
                let other = questionAt(owner)
                throw RefinerSegmentError(
                    code: .collidingPropertyNames,
                    detail: "questions '\(other.id)' (property '\(other.propertyName ?? "")') "
                        + "and '\(question.id)' (property '\(propertyName)') both give the trait key '\(key)'"
                )
            }
            taken.insert(key, owner: index)
            keys[index] = key
        }
        for index in 0..<count {
            let question = questionAt(index)
            if hasCustomNames, question.propertyName != nil { continue }
            let base = self.key(for: question.text, questionID: question.id)
            var key = base
            var ordinal = 2
            while taken.owner(of: key) != nil {
                key = suffixed(Array(base.utf8), ordinal)
                ordinal += 1
            }
            taken.insert(key, owner: index)
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

/// The keys a survey has handed out so far, with the question that owns each. A survey has a handful of
/// questions, so a linear scan beats hashing every key; large surveys switch to a dictionary.
private struct TakenKeys {
    private var small: [(key: String, owner: Int)] = []
    private var large: [String: Int]?

    init(capacity: Int) {
        if capacity > 16 { large = Dictionary(minimumCapacity: capacity) } else { small.reserveCapacity(capacity) }
    }

    func owner(of key: String) -> Int? {
        if let large { return large[key] }
        for entry in small where entry.key == key { return entry.owner }
        return nil
    }

    mutating func insert(_ key: String, owner: Int) {
        if large != nil { large![key] = owner } else { small.append((key, owner)) }
    }
}
