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

    /// The overlap the cluster drill once saw (a batch claimed by another instance within its lease): a worker
    /// whose tenant lease ran out while its request hung (a stall) found the tenant taken by a second worker of
    /// its own instance (same owner), which claimed the batch in flight again and sent the tenant beside it; the
    /// first to end its turn then handed the tenant back while the other still had a batch out, and another
    /// instance claimed that batch within its lease. A worker never takes a tenant its own instance serves.
    @Test func aWorkerNeverTakesATenantAnotherWorkerOfItsInstanceServes() async throws {
        try await TestDatabase.withSchema { client, schema in
            // No renewal within the test (a third of the lease): the lease ends only when the test ends it.
            let outbox = TestDatabase.outbox(client, schema, lease: .seconds(300))
            try await outbox.enqueue([TestDatabase.unit("held")], tenant: "held")
            let transport = HoldingTransport(holding: "wk-held")
            let (events, continuation) = AsyncStream.makeStream(of: PostgresOutboxSender.Event.self)
            let sender = PostgresOutboxSender(
                outbox: outbox, transport: transport,
                configuration: .init(concurrency: 2, idlePoll: .milliseconds(100)),
                destination: { tenant in .init(writeKey: WriteKey("wk-" + tenant), endpoint: .us) },
                onEvent: { continuation.yield($0) })
            var heldClaims = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await sender.run() }
                var enqueued = 0
                for await event in events {
                    switch event {
                    case .claimed(let batch) where batch.tenant == "held":
                        heldClaims += 1
                        guard heldClaims == 1 else { break }
                        await transport.waitForHeldRequest()
                        // The held worker's lease runs out on the server's clock, as in a stall, with no waiting.
                        try await client.query(
                            "UPDATE refiner_segment_tenants SET sender_until = now() - interval '1 second'")
                        try await outbox.enqueue([TestDatabase.unit("o1")], tenant: "other")
                        enqueued = 1
                    case .delivered(let tenant, _) where tenant == "other" && enqueued == 1:
                        // The other worker's next acquisition finds the held tenant first in line (served
                        // longest ago, its lease over); it must take this one instead.
                        try await outbox.enqueue([TestDatabase.unit("o2")], tenant: "other")
                        enqueued = 2
                    default: break
                    }
                    if heldClaims > 1 { break }
                    if case .delivered(let tenant, let messages) = event, tenant == "other",
                        messages.contains(where: { $0.message.messageID == "o2-0" })
                    {
                        break
                    }
                }
                await transport.open()
                group.cancelAll()
            }
            #expect(heldClaims == 1, "the held tenant was claimed again by a second worker of the same instance")
            #expect(await transport.requests(of: "wk-held") == 1)
        }
    }
}

extension SenderTests {
    /// The sender's need of connections (Docs/RunningSeveralInstances.md, "Connections"): one held by the
    /// listener for the whole run, and one per statement of a worker, which never waits for a second connection
    /// while it holds one. So four workers, each renewing its lease while its request is in flight, drain through
    /// a pool of two (one left to the workers): they wait for each other's statements, and never deadlock.
    @Test func fourWorkersDrainThroughAPoolOfTwoConnections() async throws {
        try await TestDatabase.withSchema(maximumConnections: 2) { client, schema in
            // Renewals every 200 ms, during requests that take 250 ms: a worker's renewal competes for the one
            // connection with the other workers' claims and settlements.
            let outbox = TestDatabase.outbox(client, schema, lease: .milliseconds(600))
            let tenants = (0..<8).map { "t\($0)" }
            for tenant in tenants {
                try await outbox.enqueue((0..<5).map { TestDatabase.unit("\(tenant)-u\($0)") }, tenant: tenant)
            }
            let expected = Set(
                tenants.flatMap { tenant in
                    (0..<5).flatMap { unit in ["\(tenant)-u\(unit)-0", "\(tenant)-u\(unit)-1"] }
                })
            let (events, continuation) = AsyncStream.makeStream(of: PostgresOutboxSender.Event.self)
            let sender = PostgresOutboxSender(
                outbox: outbox, transport: SlowTransport(delay: .milliseconds(250)),
                configuration: .init(concurrency: 4, maximumBatchMessages: 4, idlePoll: .milliseconds(200)),
                destination: { tenant in .init(writeKey: WriteKey("wk-" + tenant), endpoint: .us) },
                onEvent: { continuation.yield($0) })
            var delivered = Set<String>()
            // A bound, not a wait: a deadlock ends the events here and fails the expectation below.
            let bound = Duration.seconds(180)
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await sender.run() }
                group.addTask {
                    try await Task.sleep(for: bound)
                    continuation.finish()
                }
                for await event in events {
                    if case .delivered(_, let messages) = event {
                        delivered.formUnion(messages.map(\.message.messageID))
                    }
                    if delivered.isSuperset(of: expected) { break }
                }
                group.cancelAll()
            }
            let missing = expected.subtracting(delivered)
            #expect(missing.isEmpty, "\(missing.count) of \(expected.count) messages not delivered within \(bound)")
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
        }
    }
}

/// A Segment stand-in answering 200 after a delay, as a request in flight takes (a real wait: the sender's
/// lease renewals run on the real clock).
struct SlowTransport: SegmentTransport {
    let delay: Duration

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        try await Task.sleep(for: delay)
        return SegmentResponse(statusCode: 200, body: Array("{}".utf8))
    }
}

/// A Segment stand-in answering 200, that holds every request of one write key until ``open()``.
actor HoldingTransport: SegmentTransport {
    private let heldKey: String
    private var isOpen = false
    private var held: [CheckedContinuation<Void, Never>] = []
    private var arrivalWaiters: [CheckedContinuation<Void, Never>] = []
    private var arrivals: [String: Int] = [:]

    init(holding writeKey: String) { heldKey = writeKey }

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let body = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
        let key = body?["writeKey"] as? String ?? ""
        arrivals[key, default: 0] += 1
        if key == heldKey && !isOpen {
            await withCheckedContinuation { continuation in
                held.append(continuation)
                for waiter in arrivalWaiters { waiter.resume() }
                arrivalWaiters = []
            }
        }
        return SegmentResponse(statusCode: 200, body: Array("{}".utf8))
    }

    /// Returns once a request of the held key is being held.
    func waitForHeldRequest() async {
        guard held.isEmpty else { return }
        await withCheckedContinuation { arrivalWaiters.append($0) }
    }

    /// Answers the held requests and every later one.
    func open() {
        isOpen = true
        for continuation in held { continuation.resume() }
        held = []
    }

    /// How many requests of a write key arrived.
    func requests(of writeKey: String) -> Int { arrivals[writeKey] ?? 0 }
}
