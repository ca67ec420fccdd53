/// What has been collected about one user and their account across responses: the traits the
/// `identify` and `group` calls carry.
///
/// A value: ``SegmentCallBuilder/apply(_:to:)`` returns an updated copy, and the host persists profiles
/// however it likes (they are `Codable`). ``InMemoryProfileStore`` keeps them in memory for demos and tests.
public struct CollectedProfile: Sendable, Hashable, Codable {
    /// The user's collected traits, keyed by trait key; latest answer wins per key.
    public var userTraits: Traits
    /// The user's email, when known; `identify` carries it as the `email` trait.
    public var email: String?
    /// The account's collected traits (from any of its users), keyed by trait key; latest answer wins.
    public var accountTraits: Traits

    /// Creates a profile; an empty one for a user seen for the first time.
    public init(userTraits: Traits = Traits(), email: String? = nil, accountTraits: Traits = Traits()) {
        self.userTraits = userTraits
        self.email = email
        self.accountTraits = accountTraits
    }
}
