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
        profile.apply(try changes(for: response))
        return profile
    }

    /// Rejects a response whose own traits cannot fit in one message, whatever was collected before: a
    /// cheap bound first, the exact size only when the bound is over the limit.
    private func checkOwnAnswersFit(_ changes: ProfileChanges, of response: SurveyResponse) throws(RefinerSegmentError)
    {
        let limit = configuration.maximumMessageBytes
        let ids =
            response.id.utf8.count + (response.user.id?.utf8.count ?? 0)
            + (response.user.anonymousID?.utf8.count ?? 0) + (response.account?.id.utf8.count ?? 0)
        let envelope = 320 + contextJSON.count + 6 * ids
        var userBound = envelope + (changes.email.map { 6 * $0.utf8.count + 8 + 6 * emailKey.utf8.count } ?? 0)
        for (key, value) in changes.userTraits { userBound += Self.upperBound(key: key, value: value) }
        var accountBound = envelope
        for (key, value) in changes.accountTraits { accountBound += Self.upperBound(key: key, value: value) }
        // The common case ends here: the bounds fit, and nothing is encoded twice.
        let tracks = configuration.sendsCompletedSurveyEvent
        let trackBound =
            envelope + 160 + 6
            * (response.survey.id.utf8.count + (response.survey.name?.utf8.count ?? 0) + response.id.utf8.count)
        guard userBound > limit || accountBound > limit || (tracks && trackBound > limit) else { return }
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

    private func ownAnswersTooLarge(_ kind: SegmentMessage.Kind, response: SurveyResponse, size: Int, traits: Traits)
        -> RefinerSegmentError
    {
        var error = tooLarge(kind, response: response, size: size, traits: traits)
        error.detail = "the response's own answers do not fit in one message: " + error.detail
        return error
    }

    /// At most the bytes `"key":value,` takes in JSON (every byte escaped as `\u00XX` at worst).
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
