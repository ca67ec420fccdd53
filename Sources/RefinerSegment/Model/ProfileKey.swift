/// The record a profile store keeps a profile under: a user by user id, a user known only by an anonymous
/// id, or an account.
///
/// The three are separate namespaces: the user id `x`, the anonymous id `x` and the account id `x` are three
/// records, and no user id (such as `anonymous:x`) can reach another namespace's record.
public enum ProfileKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A user by their user id.
    case user(String)
    /// A user without a user id, by their anonymous id.
    case anonymousUser(String)
    /// An account by its id.
    case account(String)

    /// The key of the user a response is from: the user id when there is one, else the anonymous id.
    public init?(userOf user: User) {
        if let id = user.nonEmptyID {
            self = .user(id)
        } else if let id = user.nonEmptyAnonymousID {
            self = .anonymousUser(id)
        } else {
            return nil
        }
    }

    /// A byte string unique to the key, for stores that key records by bytes: a one-letter namespace
    /// (`u`, `a`, `g`), a colon, then the id.
    public var storageKey: String {
        switch self {
        case .user(let id): "u:" + id
        case .anonymousUser(let id): "a:" + id
        case .account(let id): "g:" + id
        }
    }

    /// Orders keys by ``storageKey``'s bytes (a fixed order for taking several at once).
    public static func < (lhs: ProfileKey, rhs: ProfileKey) -> Bool {
        lhs.storageKey.utf8.lexicographicallyPrecedes(rhs.storageKey.utf8)
    }

    /// `user 'x'`, `anonymous user 'x'` or `account 'x'`.
    public var description: String {
        switch self {
        case .user(let id): "user '\(id)'"
        case .anonymousUser(let id): "anonymous user '\(id)'"
        case .account(let id): "account '\(id)'"
        }
    }
}
