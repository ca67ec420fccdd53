/// What has been collected about one user: the traits `identify` carries, and the email.
///
/// A value. Merging (``merge(_:)``, ``apply(_:)``) is pure, commutative and idempotent: each trait, and the
/// email, keeps its latest answer by ``AnswerTime``.
public struct UserProfile: Sendable, Hashable {
    // The email is declared first so that the struct's memberwise initializer, `init(email:traits:...)`, has
    // another name than the public one, which is in an extension and made with it (see there).

    /// The user's latest email, when known; `identify` carries it as `<prefix>email`.
    public var email: String?
    /// The user's collected traits.
    public var traits: CollectedTraits
    /// When ``email`` was given; ``AnswerTime/distantPast`` when it is unknown or has no time.
    public var emailAnsweredAt: AnswerTime
}

extension UserProfile {
    /// Creates a profile; an empty one for a user seen for the first time.
    ///
    /// Through the memberwise initializer, which makes the value at once: assigned member by member, the
    /// profile was made in a temporary, copied whole and the temporary destroyed (about 200 instructions for
    /// each new profile; Docs/Performance.md, eighth round).
    public init(
        traits: CollectedTraits = CollectedTraits(), email: String? = nil, emailAnsweredAt: AnswerTime = .distantPast
    ) {
        self.init(email: email, traits: traits, emailAnsweredAt: emailAnsweredAt)
    }

    /// Merges another profile of the same user.
    public mutating func merge(_ other: UserProfile) {
        traits.merge(other.traits)
        if let email = other.email { mergeEmail(email, answeredAt: other.emailAnsweredAt) }
    }

    /// Merges what a response sets on its user.
    public mutating func apply(_ changes: ProfileChanges) {
        if traits.isEmpty { traits.reserveCapacity(changes.userTraits.count) }  // a newcomer: one allocation
        traits.merge(changes.userTraits, answeredAt: changes.answeredAt)
        if let email = changes.email { mergeEmail(email, answeredAt: changes.answeredAt) }
    }

    /// Merges an email given at `answeredAt`: the latest wins (ties: the one that sorts last).
    mutating func mergeEmail(_ newEmail: String, answeredAt: AnswerTime) {
        guard let current = email else {
            email = newEmail
            emailAnsweredAt = answeredAt
            return
        }
        if emailAnsweredAt < answeredAt
            || (emailAnsweredAt == answeredAt && current.utf8.lexicographicallyPrecedes(newEmail.utf8))
        {
            email = newEmail
            emailAnsweredAt = answeredAt
        }
    }
}

extension UserProfile: Codable {
    enum CodingKeys: String, CodingKey {
        case traits
        case email
    }

    private enum EmailCodingKeys: String, CodingKey {
        case value
        case at
        case response
    }

    /// Decodes `{"traits": {...}, "email": {"value": ..., "at": ..., "response": ...}}`, or the older form
    /// with `"email"` a plain string (answered at ``AnswerTime/distantPast``).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.traits = try container.decodeIfPresent(CollectedTraits.self, forKey: .traits) ?? CollectedTraits()
        self.emailAnsweredAt = .distantPast
        self.email = nil
        if let email = try? container.decodeIfPresent(String.self, forKey: .email) {
            self.email = email
        } else if container.contains(.email), try !container.decodeNil(forKey: .email) {
            let nested = try container.nestedContainer(keyedBy: EmailCodingKeys.self, forKey: .email)
            self.email = try nested.decode(String.self, forKey: .value)
            self.emailAnsweredAt = try AnswerTime(from: container.superDecoder(forKey: .email))
        }
    }

    /// Encodes `{"traits": {...}, "email": {"value": ..., "at": ..., "response": ...}}`, `email` only when
    /// known.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(traits, forKey: .traits)
        if let email {
            var nested = container.nestedContainer(keyedBy: EmailCodingKeys.self, forKey: .email)
            try nested.encode(email, forKey: .value)
            try nested.encode(AnswerTime.string(fromMicroseconds: emailAnsweredAt.microseconds), forKey: .at)
            try nested.encode(emailAnsweredAt.responseID, forKey: .response)
        }
    }
}
