import Foundation
import Logging
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import Testing

/// The server the tests use, named by REFINER_SEGMENT_POSTGRES_URL; each test gets a schema of its own.
enum TestDatabase {
    /// The server's URL, when one is configured.
    static let url = ProcessInfo.processInfo.environment["REFINER_SEGMENT_POSTGRES_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    /// Whether the tests that need a server run.
    static var isConfigured: Bool { url != nil }

    /// Why they are skipped otherwise.
    static let skipReason: Comment = """
        REFINER_SEGMENT_POSTGRES_URL is not set: these tests need a PostgreSQL server; run them with \
        Scripts/with-postgres.sh swift test --package-path Integrations
        """

    static let logger: Logger = {
        var logger = Logger(label: "refiner-segment-postgres-tests")
        // Warnings would include postgres-nio's "run() hasn't been called yet", a harmless race of the first lease.
        logger.logLevel = .error
        return logger
    }()

    /// How long a test on a schema may run before it reports itself as hung: longer than any test takes on a
    /// loaded machine (the drain's own bound is 360 s), shorter than CI's 15 minutes.
    static let hangReport = Duration.seconds(600)

    /// A fresh, migrated schema for one test, a running client whose connections use it, and a name unique to
    /// the test (for the schema, and the NOTIFY channel: channels are not per schema).
    ///
    /// - Parameter maximumConnections: The client's pool: 16, more than any test holds at once.
    static func withSchema<Result: Sendable>(
        maximumConnections: Int = 16,
        _ body: @Sendable (_ client: PostgresClient, _ schema: String) async throws -> Result
    ) async throws -> Result {
        let url = try #require(url, "\(skipReason)")
        let schema = "rs_test_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var configuration = try PostgresClient.Configuration(refinerSegmentURL: url)
        configuration.options.additionalStartupParameters = [("search_path", schema)]
        configuration.options.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        // A test that hangs (its body, or the client's shutdown) names itself while the run is still alive:
        // CI stops a hung run after 15 minutes, with nothing said about which test it was.
        return try await withThrowingTaskGroup(of: Void.self) { watch in
            watch.addTask {
                guard (try? await Task.sleep(for: Self.hangReport)) != nil else { return }
                Issue.record("still running after \(Self.hangReport), on schema \(schema): hung (Docs/Testing.md)")
            }
            defer { watch.cancelAll() }
            return try await withClient(client, schema: schema, body)
        }
    }

    private static func withClient<Result: Sendable>(
        _ client: PostgresClient,
        schema: String,
        _ body: @Sendable (_ client: PostgresClient, _ schema: String) async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query("CREATE SCHEMA \(unescaped: schema)", logger: logger)
            do {
                try await PostgresSchema.migrate(client: client, logger: logger)
                let result = try await body(client, schema)
                try await client.query("DROP SCHEMA \(unescaped: schema) CASCADE", logger: logger)
                return result
            } catch {
                _ = try? await client.query("DROP SCHEMA \(unescaped: schema) CASCADE", logger: logger)
                throw error
            }
        }
    }

    /// An outbox on the test's schema and channel.
    static func outbox(
        _ client: PostgresClient,
        _ schema: String,
        owner: String = "test-owner",
        lease: Duration = .seconds(30)
    ) -> PostgresOutbox {
        PostgresOutbox(
            client: client,
            configuration: .init(owner: owner, lease: lease, channel: schema),
            logger: logger
        )
    }

    /// A unit of `count` messages for a response: an identify and its group by default.
    static func unit(_ name: String, count: Int = 2, padding: Int = 40) -> [SegmentMessage] {
        (0..<count).map { index in
            let id = "\(name)-\(index)"
            let json = #"{"type":"identify","messageId":"\#(id)","pad":"\#(String(repeating: "p", count: padding))"}"#
            return SegmentMessage(kind: .identify, messageID: id, responseID: name, json: Array(json.utf8))
        }
    }

    /// The number of rows of a table in the test's schema.
    static func count(_ table: String, _ client: PostgresClient) async throws -> Int {
        let rows = try await client.query("SELECT count(*) FROM \(unescaped: table)", logger: logger)
        for try await (count) in rows.decode(Int.self) { return count }
        return 0
    }
}
