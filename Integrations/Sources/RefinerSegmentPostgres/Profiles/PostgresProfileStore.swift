import Foundation
import Logging
import PostgresNIO
import RefinerSegment

/// Collected profiles on PostgreSQL, one row per trait, shared by every instance of a service.
///
/// A response is merged with one statement: `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE` the stored answer is
/// older (by completion time, then response id), for the user's and the account's traits together, so the merge
/// is atomic, commutative and idempotent, and concurrent instances never lose one another's answers; the
/// application never reads, merges and writes back. A second statement reads the merged records (a fresh
/// snapshot: this answer and every one committed before it). Inside the host's transaction
/// (``apply(_:builder:on:)``) the conflicting rows stay locked until commit, so two responses of one user that
/// answer the same question are merged and recorded one after the other.
///
/// The table comes from ``PostgresSchema``. A value type holding the client; `Sendable`.
public struct PostgresProfileStore: Sendable {
    /// The client the store runs its statements through.
    public let client: PostgresClient
    let logger: Logger

    /// Creates a store on a migrated database.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Merges a response into its user's and account's profiles and returns the merged profiles, which the
    /// response's calls are built on (`builder.makeMessages(for:profile:)`).
    ///
    /// - Throws: ``RefinerSegmentError`` when the builder rejects the response (nothing is stored), or
    ///   ``PostgresStoreError``.
    public func apply(_ response: SurveyResponse, builder: SegmentCallBuilder) async throws -> CollectedProfile {
        let rows = try rows(for: response, builder: builder)
        do {
            try await client.withConnection { connection in try await merge(rows, on: connection) }
            return try await profile(user: response.user, account: response.account?.id)
        } catch {
            throw PostgresStoreError.wrapping(error, "merging response \(response.id)")
        }
    }

    /// Merges a response on the host's connection, inside its transaction when one is open, and returns the
    /// merged profiles as that transaction sees them.
    public func apply(
        _ response: SurveyResponse,
        builder: SegmentCallBuilder,
        on connection: PostgresConnection
    ) async throws -> CollectedProfile {
        let rows = try rows(for: response, builder: builder)
        do {
            try await merge(rows, on: connection)
            return try await profile(user: response.user, account: response.account?.id, on: connection)
        } catch {
            throw PostgresStoreError.wrapping(error, "merging response \(response.id)")
        }
    }

    /// The collected profiles of a user and (optionally) an account; empty ones for newcomers.
    public func profile(user: User, account: String?) async throws -> CollectedProfile {
        do {
            return try await client.withConnection { connection in
                try await profile(user: user, account: account, on: connection)
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "reading a profile")
        }
    }

    // MARK: The statements

    /// The user's record: by user id, else by anonymous id.
    static func owner(of user: User) -> (scope: String, id: String) {
        if let id = user.id, !id.isEmpty { return ("user", id) }
        return ("anonymous", user.anonymousID ?? "")
    }

    /// The rows a response sets: the traits it gives its user (and email) and its account, at its time.
    private func rows(for response: SurveyResponse, builder: SegmentCallBuilder) throws -> [StoredTrait] {
        // Applied to empty profiles, the builder yields exactly this response's own traits, keys resolved.
        let own = try builder.apply(response, to: CollectedProfile())
        let time = Self.microseconds(response.completedAt)
        let user = Self.owner(of: response.user)
        var rows: [StoredTrait] = []
        for (key, value) in own.userTraits {
            rows.append(
                StoredTrait(
                    scope: user.scope, ownerID: user.id, key: key, value: value, answeredMicroseconds: time,
                    responseID: response.id))
        }
        if let email = own.email {
            rows.append(
                StoredTrait(
                    scope: user.scope, ownerID: user.id, key: StoredTrait.emailKey, value: .string(email),
                    answeredMicroseconds: time, responseID: response.id))
        }
        if let account = response.account {
            for (key, value) in own.accountTraits {
                rows.append(
                    StoredTrait(
                        scope: "account", ownerID: account.id, key: key, value: value, answeredMicroseconds: time,
                        responseID: response.id))
            }
        }
        return rows
    }

    static func microseconds(_ date: Date) -> Int64 {
        let micros = date.timeIntervalSince1970 * 1_000_000
        return Int64(min(max(micros.isFinite ? micros.rounded() : 0, -9.2e18), 9.2e18))
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

    private func profile(user: User, account: String?, on connection: PostgresConnection) async throws
        -> CollectedProfile
    {
        let userOwner = Self.owner(of: user)
        var owners = [userOwner]
        if let account { owners.append(("account", account)) }
        var userTraits = Traits()
        var email: String?
        var accountTraits = Traits()
        for row in try await read(owners, on: connection) {
            guard let value = row.answerValue else {
                throw PostgresStoreError(
                    .storedDataUnreadable,
                    "trait '\(row.key)' of \(row.scope) '\(row.ownerID)' holds a \(row.kind) value this version cannot read"
                )
            }
            if row.scope == "account" {
                accountTraits[row.key] = value
            } else if row.key == StoredTrait.emailKey {
                if case .string(let text) = value { email = text }
            } else {
                userTraits[row.key] = value
            }
        }
        return CollectedProfile(userTraits: userTraits, email: email, accountTraits: accountTraits)
    }
}
