/// The profiles the calls of one response are built on: its user's and its account's, merged.
///
/// Two separate records (one account is shared by many users), returned together by a ``ProfileStore``
/// or by ``SegmentCallBuilder/apply(_:to:)``. `identify` carries ``user``'s traits and email, `group`
/// carries ``account``'s traits.
public struct CollectedProfile: Sendable, Hashable {
    /// The user's profile.
    public var user: UserProfile
    /// The account's profile; empty when the response has no account.
    public var account: AccountProfile

    /// Creates a profile pair; empty ones for a newcomer.
    public init(user: UserProfile = UserProfile(), account: AccountProfile = AccountProfile()) {
        self.user = user
        self.account = account
    }

    /// Creates profiles from traits known without times (counted as answered at the distant past, so any
    /// answer with a time wins over them).
    public init(userTraits: Traits, email: String? = nil, accountTraits: Traits = Traits()) {
        self.user = UserProfile(traits: CollectedTraits(userTraits), email: email)
        self.account = AccountProfile(traits: CollectedTraits(accountTraits))
    }

    /// The user's trait values, without their times.
    public var userTraits: Traits { user.traits.values }
    /// The user's email, when known.
    public var email: String? { user.email }
    /// The account's trait values, without their times.
    public var accountTraits: Traits { account.traits.values }

    /// Merges what a response sets into both profiles.
    public mutating func apply(_ changes: ProfileChanges) {
        user.apply(changes)
        if changes.account != nil { account.apply(changes) }
    }
}

extension CollectedProfile: Codable {
    enum CodingKeys: String, CodingKey {
        case user
        case account
        // The older form.
        case userTraits
        case email
        case accountTraits
    }

    /// Decodes `{"user": {...}, "account": {...}}`, or the older form `{"userTraits": {...}, "email": ...,
    /// "accountTraits": {...}}` (traits without times count as answered at the distant past).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.user) || container.contains(.account) {
            self.user = try container.decodeIfPresent(UserProfile.self, forKey: .user) ?? UserProfile()
            self.account = try container.decodeIfPresent(AccountProfile.self, forKey: .account) ?? AccountProfile()
        } else {
            self.user = UserProfile(
                traits: try container.decodeIfPresent(CollectedTraits.self, forKey: .userTraits) ?? CollectedTraits(),
                email: try container.decodeIfPresent(String.self, forKey: .email))
            self.account = AccountProfile(
                traits: try container.decodeIfPresent(CollectedTraits.self, forKey: .accountTraits)
                    ?? CollectedTraits())
        }
    }

    /// Encodes `{"user": {...}, "account": {...}}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(account, forKey: .account)
    }
}
