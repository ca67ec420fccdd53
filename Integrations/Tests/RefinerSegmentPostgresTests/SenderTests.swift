import Foundation
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import RefinerSegmentTesting
import Testing

/// The cluster sender of one instance against a real server and a scripted Segment.
@Suite(.enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct SenderTests {
    @Test func aRefusedBatchIsSplitBetweenUnitsSoThePoisonedUnitFailsAlone() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            // Four messages: the middle (2) would cut unit b; the split goes after unit a instead.
            try await outbox.enqueue(
                [TestDatabase.unit("a", count: 1), TestDatabase.unit("b", count: 3)], tenant: "acme")
            let transport = ScriptedTransport([.status(400, body: "bad"), .status(200), .status(400, body: "bad")])
            let (events, continuation) = AsyncStream.makeStream(of: PostgresOutboxSender.Event.self)
            let sender = PostgresOutboxSender(
                outbox: outbox, transport: transport,
                destination: { _ in .init(writeKey: WriteKey("wk_pg"), endpoint: .us) },
                onEvent: { continuation.yield($0) })
            var failed: [String] = []
            var delivered: [String] = []
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await sender.run() }
                for await event in events {
                    if case .delivered(_, let messages) = event { delivered += messages.map(\.message.messageID) }
                    if case .failed(_, let messages, _) = event { failed += messages.map(\.message.messageID) }
                    if delivered.count + failed.count == 4 { break }
                }
                group.cancelAll()
            }
            #expect(delivered == ["a-0"])
            #expect(failed == ["b-0", "b-1", "b-2"])
            var sizes: [Int] = []
            for request in await transport.requests {
                let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
                sizes.append((body["batch"] as? [Any])?.count ?? 0)
            }
            #expect(sizes == [4, 1, 3])
            #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == 3)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
        }
    }
}
