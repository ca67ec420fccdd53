extension SegmentCallBuilder {
    /// What a response sets on its user and its account, with its answer time: the input of a
    /// ``ProfileStore``. Pure.
    ///
    /// User-attributed answers go to ``ProfileChanges/userTraits``; account-attributed ones to
    /// ``ProfileChanges/accountTraits``, or to the user's traits when the response has no account (so no
    /// answer is lost). The account's own ``Account/traits`` are set first, so the response's answers win
    /// over them. Skipped questions set nothing.
    ///
    /// - Throws: ``RefinerSegmentError`` when the response is invalid (see ``validate(_:)``), or with code
    ///   ``RefinerSegmentError/Code/messageTooLarge`` when the response's own answers cannot fit in one
    ///   message. A profile that grew past the limit never rejects a response: its calls are split (see
    ///   ``makeMessages(for:profile:)``).
    public func changes(for response: SurveyResponse) throws(RefinerSegmentError) -> ProfileChanges {
        // A survey seen before: its question ids were checked when its keys were cached.
        let cached = cachedTraitKeys(for: response)
        try validate(response, questionIDsAreChecked: cached != nil)
        let resolved: ResolvedKeys
        if let cached { resolved = cached } else { resolved = try resolveTraitKeys(for: response) }
        let keys = resolved.keys
        // Validated: the user has an id or an anonymous id.
        let user = ProfileKey(userOf: response.user) ?? .anonymousUser("")
        var changes = ProfileChanges(
            user: user, answeredAt: AnswerTime(completedAt: response.completedAt, responseID: response.id))
        changes.userTraits.reserveCapacity(response.answers.count)
        if let accountID = response.account?.id {
            changes.account = .account(accountID)
            let hostTraits = response.account?.traits ?? Traits()
            changes.accountTraits.reserveCapacity(hostTraits.count + response.answers.count)
            for (name, value) in hostTraits {
                changes.accountTraits[normalizer.key(for: name, questionID: name)] = value
            }
        }
        let answers = response.answers
        let hasAccount = response.account != nil
        // In key order, so that each trait is appended without a search; host-known account traits (rare)
        // make the account's traits take the searching path.
        let appendsAccountTraits = changes.accountTraits.isEmpty
        for index in resolved.sortedOrder {
            guard let value = answers[index].value else { continue }
            if hasAccount, answers[index].question.attribution == .account {
                if appendsAccountTraits {
                    changes.accountTraits.appendSorted(keys[index], value, isPlainKey: true)
                } else {
                    changes.accountTraits[keys[index]] = value
                }
            } else {
                changes.userTraits.appendSorted(keys[index], value, isPlainKey: true)
            }
        }
        if let email = response.user.email, !email.isEmpty { changes.email = email }
        try checkOwnAnswersFit(changes, of: response)
        return changes
    }

    /// Folds a response into the profiles collected so far: pure, each trait keeps its latest answer by
    /// completion time (ties: response id), so applying responses in any order, or twice, gives the same
    /// profiles.
    ///
    /// - Throws: As ``changes(for:)``.
    public func apply(_ response: SurveyResponse, to profile: CollectedProfile) throws(RefinerSegmentError)
        -> CollectedProfile
    {
        var profile = profile
        if !(try applyDirectly(response, to: &profile)) { profile.apply(try changes(for: response)) }
        return profile
    }

    /// Rejects a response whose own traits cannot fit in one message, whatever was collected before: a
    /// cheap bound first, the exact size only when the bound is over the limit.
    private func checkOwnAnswersFit(_ changes: ProfileChanges, of response: SurveyResponse) throws(RefinerSegmentError)
    {
        var userTraitBytes = 0
        for (key, value) in changes.userTraits { userTraitBytes += Self.upperBound(key: key, value: value) }
        var accountTraitBytes = 0
        for (key, value) in changes.accountTraits { accountTraitBytes += Self.upperBound(key: key, value: value) }
        let bounds = ownAnswersBounds(
            of: response, email: changes.email, userTraitBytes: userTraitBytes, accountTraitBytes: accountTraitBytes)
        // The common case ends here: the bounds fit, and nothing is encoded twice.
        guard !bounds.fit else { return }
        let limit = configuration.maximumMessageBytes
        let userBound = bounds.user
        let accountBound = bounds.account
        let tracks = configuration.sendsCompletedSurveyEvent
        let trackBound = bounds.track
        let parts = sharedParts(of: response)
        if userBound > limit {
            var own = UserProfile(traits: CollectedTraits(changes.userTraits, answeredAt: changes.answeredAt))
            own.email = changes.email
            let message = encode(.identify, response: response, parts: parts) { writer in
                for item in identifyTraits(of: own) {
                    writer.key(item.key)
                    writer.value(item.value)
                }
            }
            if message.json.count > limit {
                var traits = changes.userTraits
                if let email = changes.email { traits[emailKey] = .string(email) }
                throw ownAnswersTooLarge(.identify, response: response, size: message.json.count, traits: traits)
            }
        }
        if let account = response.account, accountBound > limit {
            let traits = changes.accountTraits
            let message = encode(.group, response: response, parts: parts, groupID: account.id) { writer in
                for (key, value) in traits {
                    writer.key(key)
                    writer.value(value)
                }
            }
            if message.json.count > limit {
                throw ownAnswersTooLarge(.group, response: response, size: message.json.count, traits: traits)
            }
        }
        if tracks, trackBound > limit {
            let track = completedSurveyEvent(for: response, parts: parts)
            if track.json.count > limit {
                throw tooLarge(
                    .track, response: response, size: track.json.count, traits: completedSurveyProperties(of: response))
            }
        }
    }

    /// Cheap upper bounds of the bytes of the response's own `identify`, `group` and `track`, from the bounds
    /// of its traits' bytes, and whether all of them are within the limit.
    private func ownAnswersBounds(
        of response: SurveyResponse, email: String?, userTraitBytes: Int, accountTraitBytes: Int
    ) -> (user: Int, account: Int, track: Int, fit: Bool) {
        let limit = configuration.maximumMessageBytes
        let ids =
            response.id.utf8.count + (response.user.id?.utf8.count ?? 0)
            + (response.user.anonymousID?.utf8.count ?? 0) + (response.account?.id.utf8.count ?? 0)
        let envelope = 320 + contextJSON.count + 6 * ids
        let userBound =
            envelope + (email.map { 6 * $0.utf8.count + 8 + 6 * emailKey.utf8.count } ?? 0) + userTraitBytes
        let accountBound = envelope + accountTraitBytes
        let tracks = configuration.sendsCompletedSurveyEvent
        let trackBound =
            envelope + 160 + 6
            * (response.survey.id.utf8.count + (response.survey.name?.utf8.count ?? 0) + response.id.utf8.count)
        let fit = userBound <= limit && accountBound <= limit && (!tracks || trackBound <= limit)
        return (userBound, accountBound, trackBound, fit)
    }

    /// ``changes(for:)`` merged straight into `profile` (``CollectedProfile/apply(_:)``), without the changes
    /// in between: no trait arrays of their own, no second copy of each trait. The same checks in the same
    /// order, the same merge.
    ///
    /// - Returns: `false`, with `profile` untouched, when the response takes the general path: its account
    ///   has host-known traits (which the answers override within the response), or the cheap bound of its
    ///   own answers' size is over the limit (the exact check is in ``changes(for:)``).
    func applyDirectly(_ response: SurveyResponse, to profile: inout CollectedProfile) throws(RefinerSegmentError)
        -> Bool
    {
        guard response.account?.traits.isEmpty ?? true else { return false }
        let cached = cachedTraitKeys(for: response)
        // A survey seen before: its question ids were checked when its keys were cached, and its answers'
        // values are checked in the loop below, in the same order as `validate` checks them (the account has
        // no host-known traits to check here).
        if cached == nil {
            try validate(response, questionIDsAreChecked: false)
        } else {
            try validateEnvelope(of: response)
        }
        let resolved: ResolvedKeys
        if let cached { resolved = cached } else { resolved = try resolveTraitKeys(for: response) }
        let keys = resolved.keys
        let answers = response.answers
        let hasAccount = response.account != nil
        // Which answers go to the account (as in `changes(for:)`), and the bounds of each side's bytes.
        var userCount = 0
        var accountCount = 0
        var userTraitBytes = 0
        var accountTraitBytes = 0
        for index in answers.indices {
            if cached != nil { try checkValue(of: answers[index], responseID: response.id) }
            guard let value = answers[index].value else { continue }
            let bytes = Self.upperBound(key: keys[index], value: value)
            if hasAccount, answers[index].question.attribution == .account {
                accountCount += 1
                accountTraitBytes += bytes
            } else {
                userCount += 1
                userTraitBytes += bytes
            }
        }
        // Copied only when there is one: a copy of an absent `String?` still costs a call (the outlined copy
        // the linker binds to another library's generic one).
        let email = response.user.email?.isEmpty == false ? response.user.email : nil
        guard
            ownAnswersBounds(
                of: response, email: email, userTraitBytes: userTraitBytes, accountTraitBytes: accountTraitBytes
            ).fit
        else { return false }
        let time = AnswerTime(completedAt: response.completedAt, responseID: response.id)
        // A newcomer's side whose every answer has a value: its traits are a view of the response's answers and
        // the cached keys (nothing copied per trait, nothing allocated).
        let userSide = resolved.side(hasAccount: hasAccount, ofAccount: false)
        var userDone = false
        var accountDone = !hasAccount
        if profile.user.traits.isEmpty, userCount == userSide.count {
            if userCount > 0 {
                profile.user.traits.setView(answers: answers, resolved: resolved, side: userSide, answeredAt: time)
            }
            userDone = true
        }
        let accountSide = resolved.side(hasAccount: hasAccount, ofAccount: true)
        if hasAccount, profile.account.traits.isEmpty, accountCount == accountSide.count {
            if accountCount > 0 {
                profile.account.traits.setView(
                    answers: answers, resolved: resolved, side: accountSide, answeredAt: time)
            }
            accountDone = true
        }
        if userDone, accountDone {
            if let email { profile.user.mergeEmail(email, answeredAt: time) }
            return true
        }
        // Over the arrays' buffers, which `response` and `resolved` keep alive: walking the answers retains
        // nothing.
        answers.withUnsafeBufferPointer { answers in
            keys.withUnsafeBufferPointer { keys in
                resolved.sortedOrder.withUnsafeBufferPointer { order in
                    if !userDone {
                        let user = AnswerTraits(
                            answers: answers, keys: keys, order: order, hasAccount: hasAccount, ofAccount: false)
                        profile.user.traits.mergeAnswers(user, count: userCount, answeredAt: time)
                    }
                    if !accountDone {
                        let account = AnswerTraits(
                            answers: answers, keys: keys, order: order, hasAccount: hasAccount, ofAccount: true)
                        profile.account.traits.mergeAnswers(account, count: accountCount, answeredAt: time)
                    }
                }
            }
        }
        if let email { profile.user.mergeEmail(email, answeredAt: time) }
        return true
    }

    private func ownAnswersTooLarge(_ kind: SegmentMessage.Kind, response: SurveyResponse, size: Int, traits: Traits)
        -> RefinerSegmentError
    {
        var error = tooLarge(kind, response: response, size: size, traits: traits)
        error.detail = "the response's own answers do not fit in one message: " + error.detail
        return error
    }

    /// At most the bytes `"key":value,` takes in JSON (every byte escaped as `\u00XX` at worst).
    @inline(__always)
    private static func upperBound(key: String, value: AnswerValue) -> Int {
        let valueBytes =
            switch value {
            case .string(let text): 6 * text.utf8.count + 2
            case .integer: 20
            case .decimal: 32
            case .boolean: 5
            case .strings(let texts): texts.reduce(2) { $0 + 6 * $1.utf8.count + 3 }
            case .date: 26
            }
        return 6 * key.utf8.count + 4 + valueBytes
    }
}

/// The traits one side (user or account) of a response's answers sets, in key order, each key the normalizer's:
/// a sequence without closures, so that walking it allocates nothing.
///
/// It holds the buffers of arrays its caller keeps alive while it is used (so copying it retains nothing).
struct AnswerTraits: Sequence, IteratorProtocol {
    let answers: UnsafeBufferPointer<Answer>
    let keys: UnsafeBufferPointer<String>
    /// The answers' positions in key order.
    let order: UnsafeBufferPointer<Int>
    let hasAccount: Bool
    /// Whether this is the account's side (account-attributed answers of a response with an account).
    let ofAccount: Bool
    private var position = 0

    init(
        answers: UnsafeBufferPointer<Answer>, keys: UnsafeBufferPointer<String>, order: UnsafeBufferPointer<Int>,
        hasAccount: Bool, ofAccount: Bool
    ) {
        self.answers = answers
        self.keys = keys
        self.order = order
        self.hasAccount = hasAccount
        self.ofAccount = ofAccount
    }

    mutating func next() -> (key: String, value: AnswerValue, isPlainKey: Bool)? {
        guard let index = nextIndex(), let value = answers[index].value else { return nil }
        return (keys[index], value, true)
    }

    /// The position in ``answers`` (and ``keys``) of the next trait: an answer with a value, of this side.
    @inline(__always)
    mutating func nextIndex() -> Int? {
        while position < order.count {
            let index = order[position]
            position += 1
            guard answers[index].value != nil,
                (hasAccount && answers[index].question.attribution == .account) == ofAccount
            else { continue }
            return index
        }
        return nil
    }
}
