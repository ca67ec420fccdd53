/// What has been collected about one account, from any of its users: the traits `group` carries.
///
/// A record of its own, separate from its users' profiles: one account is shared by many users, and a
/// profile store merges each response into it atomically, so concurrent answers never lose one another.
public struct AccountProfile: Sendable, Hashable {
    /// The account's collected traits.
    public var traits: CollectedTraits

    /// Creates a profile; an empty one for an account seen for the first time.
    public init(traits: CollectedTraits = CollectedTraits()) {
        self.traits = traits
    }

    /// Merges another profile of the same account.
    public mutating func merge(_ other: AccountProfile) {
        traits.merge(other.traits)
    }

    /// Merges what a response sets on its account.
    public mutating func apply(_ changes: ProfileChanges) {
        if traits.isEmpty { traits.reserveCapacity(changes.accountTraits.count) }  // a newcomer: one allocation
        traits.merge(changes.accountTraits, answeredAt: changes.answeredAt)
    }
}

extension AccountProfile: Codable {
    enum CodingKeys: String, CodingKey {
        case traits
    }

    /// Decodes `{"traits": {...}}`, or the older form: the account's traits as a plain object of values
    /// (each answered at ``AnswerTime/distantPast``).
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: CodingKeys.self),
            let traits = try? container.decode(CollectedTraits.self, forKey: .traits)
        {
            // An older form never holds an object as a value, so a `traits` object means the newer form.
            self.traits = traits
        } else {
            self.traits = try CollectedTraits(from: decoder)
        }
    }

    /// Encodes `{"traits": {...}}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(traits, forKey: .traits)
    }
}
