/// The account (company, workspace, team) a user belongs to; the `groupId` of the `group` call.
///
/// One account has many users. Answers attributed to the account, given by any of its users, are
/// collected on the account and sent as the `group` call's traits.
public struct Account: Sendable, Hashable, Codable {
    /// The host product's id for the account. Must not be empty.
    public var id: String
    /// Traits the host already knows about the account (for example a Refiner webhook's account
    /// attributes), keyed like answers: each key is normalized and prefixed. Sent on the `group` call.
    public var traits: Traits

    /// Creates an account.
    public init(id: String, traits: Traits = Traits()) {
        self.id = id
        self.traits = traits
    }

    enum CodingKeys: String, CodingKey {
        case id
        case traits
    }

    /// Decodes `{"id": ..., "traits": {...}}`; `traits` is optional.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        self.traits = try container.decodeIfPresent(Traits.self, forKey: .traits) ?? Traits()
    }

    /// Encodes `{"id": ...}`, with `traits` only when there are any.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        if !traits.isEmpty { try container.encode(traits, forKey: .traits) }
    }
}
