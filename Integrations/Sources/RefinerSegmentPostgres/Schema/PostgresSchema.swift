import Logging
import PostgresNIO

/// The tables of the PostgreSQL stores, and the migrations that create them.
///
/// The host runs the migrations explicitly, once per deploy or at start-up, before any store is used:
///
/// ```swift
/// try await PostgresSchema.migrate(client: client, logger: logger)
/// ```
///
/// Migrations are versioned and idempotent: each runs once, in order, in its own transaction, and the version
/// is recorded in `refiner_segment_schema_versions` in that same transaction. Several instances starting at
/// once are safe: a transaction-scoped advisory lock lets one migrate while the others wait, then find nothing
/// left to do. A database migrated by a newer library (a version this one does not know) is refused with
/// ``PostgresStoreError/Code/schemaTooNew`` rather than used. The SQL is in `Docs/RunningSeveralInstances.md`.
public enum PostgresSchema {
    /// One step of the schema: a version, what it does, and its statements.
    public struct Migration: Sendable, Hashable {
        /// The version this step brings the schema to; versions start at 1 and have no gaps.
        public var version: Int
        /// What the step does, recorded beside its version.
        public var summary: String
        /// The SQL statements, run in order in one transaction.
        public var statements: [String]
    }

    /// The migrations this version of the library knows, in order.
    public static let migrations: [Migration] = [version1, version2]

    /// The newest schema version this library knows.
    public static var currentVersion: Int { migrations.last?.version ?? 0 }

    /// The key of the advisory lock migrations hold (`pg_advisory_xact_lock`): "rsegsch" in ASCII.
    static let migrationLock: Int64 = 0x72_73_65_67_73_63_68

    /// Brings the schema up to ``currentVersion`` and returns the versions applied now (empty when it already was).
    ///
    /// - Throws: ``PostgresStoreError`` with ``PostgresStoreError/Code/schemaTooNew`` when the database holds a
    ///   newer version than this library knows, or ``PostgresStoreError/Code/serverFailed``.
    @discardableResult
    public static func migrate(client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in try await migrate(on: connection, logger: logger) }
    }

    /// Brings the schema up to date on one connection, which must not be inside a transaction.
    @discardableResult
    public static func migrate(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        var applied: [Int] = []
        do {
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS refiner_segment_schema_versions (
                    version integer PRIMARY KEY,
                    summary text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                logger: logger
            )
            for migration in migrations {
                let ran = try await connection.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
                    let newest = try await newestVersion(on: connection, logger: logger)
                    guard newest <= currentVersion else {
                        throw PostgresStoreError(
                            .schemaTooNew,
                            "the database's schema is at version \(newest); this library knows up to \(currentVersion)"
                        )
                    }
                    guard newest < migration.version else { return false }
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        """
                        INSERT INTO refiner_segment_schema_versions (version, summary)
                        VALUES (\(migration.version), \(migration.summary))
                        """,
                        logger: logger
                    )
                    return true
                }
                if ran {
                    applied.append(migration.version)
                    logger.info("refiner-segment schema migrated", metadata: ["version": "\(migration.version)"])
                }
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "migrating the refiner-segment schema")
        }
        return applied
    }

    /// The schema version the database is at (0 before the first migration).
    public static func version(client: PostgresClient, logger: Logger) async throws -> Int {
        do {
            return try await client.withConnection { connection in
                let exists = try await connection.query(
                    "SELECT to_regclass('refiner_segment_schema_versions') IS NOT NULL",
                    logger: logger
                )
                for try await (found) in exists.decode(Bool.self) where !found { return 0 }
                return try await newestVersion(on: connection, logger: logger)
            }
        } catch {
            throw PostgresStoreError.wrapping(error, "reading the refiner-segment schema version")
        }
    }

    private static func newestVersion(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            "SELECT coalesce(max(version), 0) FROM refiner_segment_schema_versions",
            logger: logger
        )
        for try await (version) in rows.decode(Int.self) { return version }
        return 0
    }
}
