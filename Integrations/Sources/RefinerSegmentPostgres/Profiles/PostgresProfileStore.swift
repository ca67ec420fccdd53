import Foundation
import Logging
import PostgresNIO
import RefinerSegment

/// Collected profiles on PostgreSQL, one row per trait, shared by every instance of a service: a ``ProfileStore``.
///
/// A response is merged with one statement: `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE` the stored answer is
/// older (by completion time, then response id), for the user's and the account's traits together, so the merge
/// is atomic, commutative and idempotent, and concurrent instances never lose one another's answers; the
/// application never reads, merges and writes back. A second statement reads the merged records (a fresh
/// snapshot: this answer and every one committed before it), with each trait's time. Inside the host's
/// transaction (``apply(_:on:)``) the conflicting rows stay locked until commit, so two responses of one user
/// that answer the same question are merged and recorded one after the other across the cluster.
///
/// ``recordingOrder`` orders the callers of this process (as the protocol asks); across instances, the answer
/// times keep every profile right whatever the order, and the transaction above keeps the calls in order.
/// The table comes from ``PostgresSchema``. A value type holding the client; `Sendable`.
public struct PostgresProfileStore: ProfileStore {
    /// The client the store runs its statements through.
    public let client: PostgresClient
    /// The order in which this process's callers apply, build and record, per record.
    public let recordingOrder = ProfileRecordingOrder()
    let logger: Logger

    /// Creates a store on a migrated database.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Merges a response's changes into its user's and account's records and returns the merged profiles.
    ///
    /// - Throws: ``PostgresStoreError``; nothing is merged then.
    public func apply(_ changes: ProfileChanges) async throws -> CollectedProfile {
        do {
            return try await client.withConnection { connection in try await apply(changes, on: connection) }
        } catch {
            throw PostgresStoreError.wrapping(error, "merging response \(changes.answeredAt.responseID)")
        }
    }

    /// Merges on the host's connection, inside its transaction when one is open, and returns the merged
    /// profiles as that transaction sees them.
    public func apply(_ changes: ProfileChanges, on connection: PostgresConnection) async throws -> CollectedProfile {
        do {
            try await merge(Self.rows(for: changes), on: connection)
            return try await profile(user: changes.user, account: changes.account, on: connection)
        } catch {
            throw PostgresStoreError.wrapping(error, "merging response \(changes.answeredAt.responseID)")
        }
    }

    /// Merges a response (``SegmentCallBuilder/changes(for:)``) and returns the merged profiles.
    ///
    /// - Throws: ``RefinerSegmentError`` when the builder rejects the response (nothing is stored), or
    ///   ``PostgresStoreError``.
    public func apply(_ response: SurveyResponse, builder: SegmentCallBuilder) async throws -> CollectedProfile {
        try await apply(try builder.changes(for: response))
    }

    /// The collected profiles of a user and (optionally) an account, with each trait's time; empty ones for
    /// newcomers.
    public func profile(user: ProfileKey, account: ProfileKey?) async throws -> CollectedProfile {
        do {
            return try await client.withConnection { connection in
                try await profile(user: user, account: account, on: connection)
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "reading a profile")
        }
    }

    // MARK: The statements

    /// The row key of a record.
    static func owner(of key: ProfileKey) -> (scope: String, id: String) {
        switch key {
        case .user(let id): ("user", id)
        case .anonymousUser(let id): ("anonymous", id)
        case .account(let id): ("account", id)
        }
    }

    /// The rows a response sets: the traits it gives its user (and email) and its account, at its time.
    static func rows(for changes: ProfileChanges) -> [StoredTrait] {
        let time = changes.answeredAt
        let user = owner(of: changes.user)
        var rows: [StoredTrait] = []
        func add(_ owner: (scope: String, id: String), _ key: String, _ value: AnswerValue) {
            rows.append(
                StoredTrait(
                    scope: owner.scope, ownerID: owner.id, key: key, value: value,
                    answeredMicroseconds: time.microseconds, responseID: time.responseID)
            )
        }
        for (key, value) in changes.userTraits { add(user, key, value) }
        if let email = changes.email { add(user, StoredTrait.emailKey, .string(email)) }
        if let account = changes.account {
            for (key, value) in changes.accountTraits { add(owner(of: account), key, value) }
        }
        return rows
    }

    /// The merge: one upsert for every row, keeping the later answer; rows with an equal time and response keep
    /// the greater value text, so even a response edited and replayed merges the same in any order.
    func merge(_ rows: [StoredTrait], on connection: PostgresConnection) async throws {
        guard !rows.isEmpty else { return }
        try await connection.query(
            """
            INSERT INTO refiner_segment_profile_traits AS t
                (scope, owner_id, key, kind, value, answered_us, response_id)
            SELECT scope, owner_id, key, kind, value::jsonb, answered_us, response_id
            FROM unnest(
                \(rows.map(\.scope))::text[], \(rows.map(\.ownerID))::text[], \(rows.map(\.key))::text[],
                \(rows.map(\.kind))::text[], \(rows.map(\.value))::text[], \(rows.map(\.answeredMicroseconds))::int8[],
                \(rows.map(\.responseID))::text[]
            ) AS i(scope, owner_id, key, kind, value, answered_us, response_id)
            ON CONFLICT (scope, owner_id, key) DO UPDATE
            SET kind = EXCLUDED.kind, value = EXCLUDED.value, answered_us = EXCLUDED.answered_us,
                response_id = EXCLUDED.response_id
            WHERE t.answered_us < EXCLUDED.answered_us
               OR (t.answered_us = EXCLUDED.answered_us
                   AND t.response_id COLLATE "C" < EXCLUDED.response_id COLLATE "C")
               OR (t.answered_us = EXCLUDED.answered_us AND t.response_id = EXCLUDED.response_id
                   AND t.value::text COLLATE "C" < EXCLUDED.value::text COLLATE "C")
            """,
            logger: logger
        )
    }

    /// The stored rows of the given records.
    func read(_ owners: [(scope: String, id: String)], on connection: PostgresConnection) async throws -> [StoredTrait]
    {
        let result = try await connection.query(
            """
            SELECT t.scope, t.owner_id, t.key, t.kind, t.value::text, t.answered_us, t.response_id
            FROM refiner_segment_profile_traits AS t
            JOIN unnest(\(owners.map(\.scope))::text[], \(owners.map(\.id))::text[]) AS o(scope, owner_id)
              ON t.scope = o.scope AND t.owner_id = o.owner_id
            ORDER BY t.scope, t.owner_id, t.key
            """,
            logger: logger
        )
        var rows: [StoredTrait] = []
        for try await row in result.decode((String, String, String, String, String, Int64, String).self) {
            rows.append(
                StoredTrait(
                    scope: row.0, ownerID: row.1, key: row.2, kind: row.3, value: row.4, answeredMicroseconds: row.5,
                    responseID: row.6))
        }
        return rows
    }

    private func profile(user: ProfileKey, account: ProfileKey?, on connection: PostgresConnection) async throws
        -> CollectedProfile
    {
        var owners = [Self.owner(of: user)]
        if let account { owners.append(Self.owner(of: account)) }
        var profile = CollectedProfile()
        for row in try await read(owners, on: connection) {
            guard let value = row.answerValue else {
                throw PostgresStoreError(
                    .storedDataUnreadable,
                    "trait '\(row.key)' of \(row.scope) '\(row.ownerID)' holds a \(row.kind) value this version cannot read"
                )
            }
            let time = AnswerTime(microseconds: row.answeredMicroseconds, responseID: row.responseID)
            if row.scope == "account" {
                profile.account.traits.merge(row.key, value: value, answeredAt: time)
            } else if row.key == StoredTrait.emailKey {
                if case .string(let text) = value {
                    profile.user.email = text
                    profile.user.emailAnsweredAt = time
                }
            } else {
                profile.user.traits.merge(row.key, value: value, answeredAt: time)
            }
        }
        return profile
    }
}
