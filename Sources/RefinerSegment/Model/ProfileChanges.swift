/// What one response sets: its user's traits and email, its account's traits, and when it was answered.
///
/// Made by ``SegmentCallBuilder/changes(for:)`` (which validates the response and resolves its trait keys)
/// and merged by a ``ProfileStore`` into the user's and the account's records. Within one response an
/// answer wins over a host-known account trait (``Account/traits``) with the same key.
public struct ProfileChanges: Sendable, Hashable {
    /// The user's record.
    public var user: ProfileKey
    /// The account's record, when the response has an account.
    public var account: ProfileKey?
    /// When the answers were given: the response's completion time and id.
    public var answeredAt: AnswerTime
    /// The traits the response sets on its user (account answers too, when it has no account).
    public var userTraits: Traits
    /// The email the response gives, when it gives one.
    public var email: String?
    /// The traits the response sets on its account.
    public var accountTraits: Traits

    /// Creates changes.
    public init(
        user: ProfileKey,
        account: ProfileKey? = nil,
        answeredAt: AnswerTime,
        userTraits: Traits = Traits(),
        email: String? = nil,
        accountTraits: Traits = Traits()
    ) {
        self.user = user
        self.account = account
        self.answeredAt = answeredAt
        self.userTraits = userTraits
        self.email = email
        self.accountTraits = accountTraits
    }

    /// The records the changes touch, in a fixed order (for taking them one after the other).
    public var keys: [ProfileKey] {
        guard let account else { return [user] }
        return user < account ? [user, account] : [account, user]
    }
}
