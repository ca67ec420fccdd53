import Foundation
import RefinerSegmentPostgres
import Testing

/// The guide shows the migrations' SQL word for word; this keeps the two from drifting apart (no server needed).
struct SchemaDocumentationTests {
    static func collapsed(_ text: String) -> String {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
    }

    @Test func theGuideShowsEveryMigrationStatement() throws {
        let guide = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Docs/RunningSeveralInstances.md")
        let text = Self.collapsed(try String(contentsOf: guide, encoding: .utf8))
        for migration in PostgresSchema.migrations {
            for statement in migration.statements {
                #expect(text.contains(Self.collapsed(statement) + ";"), "missing from the guide: \(statement)")
            }
        }
        #expect(PostgresSchema.currentVersion == 2)
    }
}
