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

    /// A keep-alive connection that the server drops (FIN or RST) just as the next request goes out on it:
    /// the HTTP layer sends that request again on a new connection, and must send its whole body again. On
    /// Linux, FoundationNetworking could not rewind an in-memory body, so libcurl resent the headers
    /// (`Content-Length: 2712`) and no body: the server waited, the client timed out (30 s by default), and a
    /// server that answered the short body with 400 failed the batch for good.
    @Test(arguments: [(200, false), (200, true), (503, false), (503, true)])
    func aDroppedKeepAliveConnectionResendsTheWholeBody(status: Int, reset: Bool) async throws {
        // When each request arrived, on the server's threads (not the test's, which a loaded machine delays).
        let arrivals = Locked<[ContinuousClock.Instant]>([])
        let server = try LoopbackHTTPServer { _ in
            let count = arrivals.withLock { times in
                times.append(.now)
                return times.count
            }
            // Every other request arrives on the connection the previous answer left open, and is dropped.
            return count % 2 == 0 ? (reset ? .reset : .close) : .status(status, body: "{}")
        }
        defer { server.stop() }
        let transport = URLSessionTransport()
        let body =
            Array(#"{"batch":[],"pad":""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 2690) + Array(#""}"#.utf8)
        for round in 0..<6 {
            // A stall throws once the 20 s timeout has passed; a resent request is answered.
            let response = try await transport.send(
                SegmentRequest(
                    url: server.baseURL.appendingPathComponent("v1/batch"), body: body, timeout: .seconds(20)))
            #expect(response.statusCode == status, "round \(round)")
        }
        #expect(server.incompleteRequests.isEmpty, "requests whose body was cut: \(server.incompleteRequests.count)")
        #expect(server.requests.allSatisfy { $0.body == body })
        // Each dropped request is sent again at once, not after a timeout: under 2 s between the two, as the
        // server saw them (a stall would be the 20 s timeout).
        let times = arrivals.withLock { $0 }
        for index in stride(from: 1, to: times.count - 1, by: 2) {
            #expect(times[index + 1] - times[index] < .seconds(2), "request \(index + 1) was resent late")
        }
    }

    /// A TLS handshake that fails (here: the server speaks plain HTTP) cannot pass by retrying: the transport
    /// says so, and the pipeline fails the batch at once instead of retrying it for 12 hours.
    @Test func aTLSHandshakeFailureIsPermanent() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let url = URL(string: "https://127.0.0.1:\(server.port)/v1/batch")!
        do {
            _ = try await URLSessionTransport().send(
                SegmentRequest(url: url, body: Array("{}".utf8), timeout: .seconds(10)))
            Issue.record("a TLS handshake with a plain-HTTP server succeeded")
        } catch let error as SegmentTransportError {
            #expect(!error.isRetryable)
            #expect(error.detail.contains("TLS"), "\(error)")
        } catch {
            Issue.record("a TLS failure was thrown as \(error), which the pipeline retries")
        }
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
final class LockedCounter: Sendable {
    private let count = Locked(0)

    func next() -> Int {
        count.withLock { count in
            count += 1
            return count - 1
        }
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
