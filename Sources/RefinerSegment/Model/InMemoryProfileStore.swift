/// Collected profiles kept in memory, keyed by user and by account: for demos, the CLI and tests.
///
/// A value type; hosts that share one across tasks wrap it in an actor, and hosts that need profiles to
/// outlive the process persist ``CollectedProfile`` values (or this store, which is `Codable`) themselves.
public struct InMemoryProfileStore: Sendable, Hashable, Codable {
    /// The users' traits and emails, keyed by user id, or `anonymous:` and the anonymous id.
    public var users: [String: UserEntry] = [:]
    /// The accounts' traits, keyed by account id.
    public var accounts: [String: Traits] = [:]

    /// What the store keeps for one user.
    public struct UserEntry: Sendable, Hashable, Codable {
        /// The user's collected traits.
        public var traits: Traits
        /// The user's email, when known.
        public var email: String?

        /// Creates an entry.
        public init(traits: Traits = Traits(), email: String? = nil) {
            self.traits = traits
            self.email = email
        }
    }

    /// Creates an empty store.
    public init() {}

    /// The profile collected so far for the response's user and account (empty for newcomers).
    public func profile(for response: SurveyResponse) -> CollectedProfile {
        let user = users[Self.userKey(response.user)]
        return CollectedProfile(
            userTraits: user?.traits ?? Traits(),
            email: user?.email,
            accountTraits: response.account.flatMap { accounts[$0.id] } ?? Traits()
        )
    }

    /// Stores `profile` as the response's user's and account's collected traits.
    public mutating func store(_ profile: CollectedProfile, for response: SurveyResponse) {
        users[Self.userKey(response.user)] = UserEntry(traits: profile.userTraits, email: profile.email)
        if let account = response.account { accounts[account.id] = profile.accountTraits }
    }

    /// Applies the response to the stored profiles and returns its Segment messages, in sending order.
    ///
    /// Nothing is stored when the response is rejected.
    /// - Throws: ``RefinerSegmentError`` from ``SegmentCallBuilder/process(_:profile:)``.
    public mutating func process(
        _ response: SurveyResponse,
        with builder: SegmentCallBuilder
    ) throws(RefinerSegmentError) -> [SegmentMessage] {
        let (messages, profile) = try builder.process(response, profile: profile(for: response))
        store(profile, for: response)
        return messages
    }

    private static func userKey(_ user: User) -> String {
        if let id = user.nonEmptyID { return id }
        return "anonymous:" + (user.anonymousID ?? "")
    }
}
