import Foundation
import RefinerSegment
import RefinerSegmentTesting
import RefinerSegmentURLSession
import Testing

@Suite struct URLSessionTransportTests {
    @Test func passesTheCompatibilityTest() async throws {
        try await TransportCompatibilityTest(transport: URLSessionTransport()).run()
    }

    @Test func serverSeesTheExactHeadersAndABodyThatParses() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var configuration = SegmentPipeline.Configuration()
        configuration.endpoint = SegmentEndpoint(baseURL: server.baseURL)
        let messages = try Fixture.pair(responseID: "resp_1")
        let delivered = try await SegmentPipeline.withPipeline(
            writeKey: WriteKey("wk_123"), transport: URLSessionTransport(), configuration: configuration
        ) { pipeline in
            try await pipeline.record(messages)
            await pipeline.flush()
            return await pipeline.counters.delivered
        }

        let request = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(request.method == "POST")
        #expect(request.path == "/v1/batch")
        #expect(request.headerField("Content-Type") == "application/json")
        #expect(request.headerField("Authorization") == "Basic " + Data("wk_123:".utf8).base64EncodedString())
        #expect(request.headerField("User-Agent") == "refiner-segment-swift/\(LibraryInfo.refinerSegment.version)")
        #expect(request.headerField("X-Retry-Count") == "0")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        #expect(body["writeKey"] as? String == "wk_123")
        #expect(body["sentAt"] is String)
        let batch = try #require(body["batch"] as? [[String: Any]])
        #expect(batch.compactMap { $0["messageId"] as? String } == messages.map(\.messageID))
        #expect(delivered == 2)
    }

    @Test func fiveHundredThenTwoHundredIsDeliveredOnce() async throws {
        let answers = LockedCounter()
        let server = try LoopbackHTTPServer { _ in
            answers.next() == 0
                ? .respond(SegmentResponse(statusCode: 500, body: Array("try again".utf8)))
                : .respond(SegmentResponse(statusCode: 200, body: Array("{}".utf8)))
        }
        defer { server.stop() }
        let clock = VirtualClock()
        var configuration = SegmentPipeline.Configuration()
        configuration.endpoint = SegmentEndpoint(baseURL: server.baseURL)
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk"), transport: URLSessionTransport(), configuration: configuration,
            clock: clock, wallClock: clock.wallClock, jitter: { $0 })
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = Task { try await pipeline.run() }
        try await pipeline.record(try Fixture.pair(responseID: "resp_2"))
        await pipeline.flush()
        pipeline.triggerGracefulShutdown()
        try await running.value

        var kinds: [String] = []
        for await outcome in outcomes {
            switch outcome {
            case .delivered: kinds.append("delivered")
            case .retrying(_, let retryCount, let delay, let reason):
                kinds.append("retrying \(retryCount) after \(delay) (\(reason.statusCode ?? 0))")
            case .failed: kinds.append("failed")
            case .handedBack: kinds.append("handed back")
            }
        }
        #expect(kinds == ["retrying 1 after 0.5 seconds (500)", "delivered"])
        #expect(server.requests.map { $0.headerField("X-Retry-Count") } == ["0", "1"])
        #expect(await pipeline.counters.delivered == 2)
    }

    @Test func connectionRefusedIsThrownNotReturned() async throws {
        let server = try LoopbackHTTPServer()
        let url = URL(string: server.baseURL.absoluteString + "/v1/batch")!
        server.stop()
        await #expect(throws: (any Error).self) {
            _ = try await URLSessionTransport().send(SegmentRequest(url: url, body: [], timeout: .seconds(5)))
        }
    }
}

/// Counts calls across threads (the server's handler runs on its own threads).
final class LockedCounter: @unchecked Sendable {
    // Guarded by `lock`; the handler is called from the server's connection threads.
    private let lock = NSLock()
    private var count = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count - 1
    }
}

enum Fixture {
    static func pair(responseID: String) throws -> [SegmentMessage] {
        let response = SurveyResponse(
            id: responseID, completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "onboarding"),
            user: User(id: "user-1", email: "john.doe@example.com"), account: Account(id: "account-1"),
            answers: [Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO")])
        var store = InMemoryProfileStore()
        return try store.process(response, with: SegmentCallBuilder())
    }
}
