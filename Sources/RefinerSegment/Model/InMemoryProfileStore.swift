/// Collected profiles kept in a value, keyed by user and by account: for the CLI, scripts and tests that
/// work in one task.
///
/// Merging is by answer time (see ``CollectedTraits``), so the same responses processed in any order, any
/// number of times, leave equal stores. Unbounded: it grows with every distinct user. Hosts that share
/// profiles across tasks use the ``MemoryProfileStore`` actor (bounded, a ``ProfileStore``), or a
/// file-backed store (`RefinerSegmentFileStore`) to keep them across runs.
public struct InMemoryProfileStore: Sendable, Hashable {
    /// The profiles of users with a user id, keyed by it.
    public var users: [String: UserProfile] = [:]
    /// The profiles of users known only by an anonymous id, keyed by it (a namespace of its own, so an
    /// anonymous id never meets a user id).
    public var anonymousUsers: [String: UserProfile] = [:]
    /// The accounts' profiles, keyed by account id.
    public var accounts: [String: AccountProfile] = [:]

    /// Creates an empty store.
    public init() {}

    /// The profile of a user record.
    public func user(_ key: ProfileKey) -> UserProfile? {
        switch key {
        case .user(let id): users[id]
        case .anonymousUser(let id): anonymousUsers[id]
        case .account: nil
        }
    }

    /// The profiles collected so far for the response's user and account (empty for newcomers).
    public func profile(for response: SurveyResponse) -> CollectedProfile {
        CollectedProfile(
            user: ProfileKey(userOf: response.user).flatMap(user) ?? UserProfile(),
            account: response.account.flatMap { accounts[$0.id] } ?? AccountProfile()
        )
    }

    /// Merges `profile` into the response's user's and account's records.
    public mutating func store(_ profile: CollectedProfile, for response: SurveyResponse) {
        if let key = ProfileKey(userOf: response.user) { mergeUser(profile.user, into: key) }
        if let account = response.account { accounts[account.id, default: AccountProfile()].merge(profile.account) }
    }

    /// Merges what a response sets into its records and returns the merged profiles.
    public mutating func apply(_ changes: ProfileChanges) -> CollectedProfile {
        // Each record changes in place in its dictionary (one lookup, no copy of its traits), and the result
        // shares its storage.
        func applied<Profile>(_ profile: inout Profile, _ apply: (inout Profile) -> Void) -> Profile {
            apply(&profile)
            return profile
        }
        var profile = CollectedProfile()
        switch changes.user {
        case .user(let id): profile.user = applied(&users[id, default: UserProfile()]) { $0.apply(changes) }
        case .anonymousUser(let id):
            profile.user = applied(&anonymousUsers[id, default: UserProfile()]) { $0.apply(changes) }
        case .account: profile.user.apply(changes)
        }
        if case .account(let id)? = changes.account {
            profile.account = applied(&accounts[id, default: AccountProfile()]) { $0.apply(changes) }
        }
        return profile
    }

    /// Applies the response to the stored profiles and returns its Segment messages, in sending order.
    ///
    /// Nothing is stored when the response is rejected.
    /// - Throws: ``RefinerSegmentError`` from ``SegmentCallBuilder/changes(for:)`` and
    ///   ``SegmentCallBuilder/makeMessages(for:profile:)``.
    public mutating func process(
        _ response: SurveyResponse,
        with builder: SegmentCallBuilder
    ) throws(RefinerSegmentError) -> [SegmentMessage] {
        let changes = try builder.changes(for: response)
        return try builder.encodeMessages(for: response, profile: apply(changes))
    }

    private mutating func mergeUser(_ profile: UserProfile, into key: ProfileKey) {
        switch key {
        case .user(let id): users[id, default: UserProfile()].merge(profile)
        case .anonymousUser(let id): anonymousUsers[id, default: UserProfile()].merge(profile)
        case .account: break
        }
    }
}

extension InMemoryProfileStore: Codable {
    enum CodingKeys: String, CodingKey {
        case users
        case anonymousUsers
        case accounts
    }

    /// Decodes `{"users": {...}, "anonymousUsers": {...}, "accounts": {...}}`, or the older form in which
    /// anonymous users were keyed `anonymous:<id>` among the users.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        users = try container.decodeIfPresent([String: UserProfile].self, forKey: .users) ?? [:]
        accounts = try container.decodeIfPresent([String: AccountProfile].self, forKey: .accounts) ?? [:]
        if container.contains(.anonymousUsers) {
            anonymousUsers = try container.decode([String: UserProfile].self, forKey: .anonymousUsers)
        } else {
            for (key, profile) in users where key.hasPrefix("anonymous:") {
                users[key] = nil
                anonymousUsers[String(key.dropFirst("anonymous:".count))] = profile
            }
        }
    }

    /// Encodes `{"users": {...}, "anonymousUsers": {...}, "accounts": {...}}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(users, forKey: .users)
        try container.encode(anonymousUsers, forKey: .anonymousUsers)
        try container.encode(accounts, forKey: .accounts)
    }
}
