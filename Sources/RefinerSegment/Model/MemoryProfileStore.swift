/// Collected profiles in memory, shared by every task of a host: a ``ProfileStore`` in one actor, bounded.
///
/// Profiles hold personal data (emails, free text), so the store keeps at most
/// ``Configuration/maximumUsers`` users and ``Configuration/maximumAccounts`` accounts. At the bound the
/// host's ``Configuration/Eviction`` decides: forget the least recently applied record (the default; its
/// next `identify` or `group` carries only what is collected from then on, which Segment merges into what
/// it already has), or refuse responses of new users and accounts with ``ProfileStoreError`` (nothing is
/// forgotten; the host sees the error). Either way nothing is dropped silently: ``evictedCount`` counts
/// what was forgotten. Lost on exit; use the file-backed store to keep profiles across runs.
public actor MemoryProfileStore: ProfileStore {
    /// The store's bounds.
    public struct Configuration: Sendable, Hashable {
        /// What happens when a new record would pass a bound.
        public enum Eviction: Sendable, Hashable {
            /// Forget the record applied least recently (of the same kind, user or account).
            case leastRecentlyApplied
            /// Keep every record and refuse the new one: ``apply(_:)`` throws ``ProfileStoreError``.
            case refuseNewRecords
        }

        /// The most users kept. Default 100,000.
        public var maximumUsers: Int
        /// The most accounts kept. Default 10,000.
        public var maximumAccounts: Int
        /// What happens at a bound. Default ``Eviction/leastRecentlyApplied``.
        public var eviction: Eviction

        /// Creates a configuration.
        public init(
            maximumUsers: Int = 100_000, maximumAccounts: Int = 10_000, eviction: Eviction = .leastRecentlyApplied
        ) {
            self.maximumUsers = max(1, maximumUsers)
            self.maximumAccounts = max(1, maximumAccounts)
            self.eviction = eviction
        }
    }

    /// The store's bounds.
    public nonisolated let configuration: Configuration
    /// The per-record order of ``SegmentPipeline/record(_:profiles:builder:)``.
    public nonisolated let recordingOrder = ProfileRecordingOrder()

    private var users = Table<UserProfile>()
    private var accounts = Table<AccountProfile>()
    /// The number of records forgotten at a bound so far.
    public private(set) var evictedCount = 0

    /// Creates an empty store.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Merges a response's changes into its records and returns the merged profiles.
    ///
    /// - Throws: ``ProfileStoreError`` when a record is new, its bound is reached and the eviction is
    ///   ``Configuration/Eviction/refuseNewRecords``; nothing is applied then.
    public func apply(_ changes: ProfileChanges) throws(ProfileStoreError) -> CollectedProfile {
        if configuration.eviction == .refuseNewRecords {
            if users.values[changes.user] == nil, users.values.count >= configuration.maximumUsers {
                throw ProfileStoreError(full: changes.user, bound: configuration.maximumUsers)
            }
            if let account = changes.account, accounts.values[account] == nil,
                accounts.values.count >= configuration.maximumAccounts
            {
                throw ProfileStoreError(full: account, bound: configuration.maximumAccounts)
            }
        }
        var profile = CollectedProfile(user: users.values[changes.user] ?? UserProfile())
        profile.user.apply(changes)
        evictedCount += users.set(profile.user, for: changes.user, bound: configuration.maximumUsers)
        if let account = changes.account {
            profile.account = accounts.values[account] ?? AccountProfile()
            profile.account.apply(changes)
            evictedCount += accounts.set(profile.account, for: account, bound: configuration.maximumAccounts)
        }
        return profile
    }

    /// The profile of a record, when the store holds it.
    public func profile(_ key: ProfileKey) -> (user: UserProfile?, account: AccountProfile?) {
        (users.values[key], accounts.values[key])
    }

    /// The numbers of users and accounts held.
    public var counts: (users: Int, accounts: Int) { (users.values.count, accounts.values.count) }

    /// Records with their last use, and a queue of uses for finding the least recent one in amortized
    /// constant time (a use is stale when the record was used again later).
    private struct Table<Value> {
        var values: [ProfileKey: Value] = [:]
        var lastUse: [ProfileKey: Int] = [:]
        var uses: [(key: ProfileKey, tick: Int)] = []
        var head = 0
        var tick = 0

        /// Stores a value, and returns how many records were forgotten to stay within `bound`.
        mutating func set(_ value: Value, for key: ProfileKey, bound: Int) -> Int {
            tick += 1
            values[key] = value
            lastUse[key] = tick
            uses.append((key, tick))
            var evicted = 0
            while values.count > bound, head < uses.count {
                let use = uses[head]
                head += 1
                if lastUse[use.key] == use.tick {
                    values[use.key] = nil
                    lastUse[use.key] = nil
                    evicted += 1
                }
            }
            if uses.count - head > 2 * values.count + 1024 {
                // Mostly stale uses of records applied again: keep one per record, oldest first.
                uses = lastUse.map { (key: $0.key, tick: $0.value) }.sorted { $0.tick < $1.tick }
                head = 0
            } else if head > 1024, head * 2 > uses.count {
                uses.removeFirst(head)
                head = 0
            }
            return evicted
        }
    }
}

/// A profile store refused to apply a response.
public struct ProfileStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, in words: names the record and the bound or the file.
    public let detail: String

    init(detail: String) {
        self.detail = detail
    }

    init(full key: ProfileKey, bound: Int) {
        self.detail =
            "the profile store holds its maximum of \(bound) records of this kind and refuses new ones; \(key) is not stored"
    }

    /// `profile store: <detail>`.
    public var description: String { "profile store: " + detail }
}
