import AsyncHTTPClient
import Foundation
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentTesting
import Testing

// Serialized: LoopbackHTTPServer.stop() closes its listening socket while its accept thread may still be
// about to call accept on that descriptor number, so a server stopped by one test can take (and close) a
// connection meant for the next test's server when the number is reused. Run one at a time, those races
// need a test that starts while another stops.
@Suite(.serialized) struct AsyncHTTPClientTransportTests {
    @Test func passesTheCompatibilityTest() async throws {
        try await TransportCompatibilityTest(transport: AsyncHTTPClientTransport()).run()
    }

    @Test func pipelineDeliversAPairThroughTheAdapter() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var configuration = SegmentPipeline.Configuration()
        configuration.endpoint = SegmentEndpoint(baseURL: server.baseURL)
        let profiles = MemoryProfileStore()
        let response = SurveyResponse(
            id: "resp_1", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "onboarding"),
            user: User(id: "user-1"), account: Account(id: "account-1"),
            answers: [Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO")])
        let (undelivered, delivered) = try await SegmentPipeline.withPipeline(
            writeKey: WriteKey("wk_123"), transport: AsyncHTTPClientTransport(), configuration: configuration
        ) { pipeline in
            try await pipeline.record(response, profiles: profiles, builder: SegmentCallBuilder())
            await pipeline.flush()
            return (await pipeline.handedBackMessages, await pipeline.counters.delivered)
        }

        #expect(undelivered.isEmpty)
        #expect(delivered == 2)
        let request = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(request.path == "/v1/batch")
        #expect(request.headerField("Authorization") == WriteKey("wk_123").basicAuthorization)
        #expect(request.headerField("X-Retry-Count") == "0")
    }

    @Test func timeoutCoversABodyThatStopsHalfway() async throws {
        let server = try StalledBodyServer()
        defer { server.stop() }
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            _ = try await AsyncHTTPClientTransport().send(SegmentRequest(url: server.url, timeout: .seconds(1)))
        }
        // Generous: only a transport that waits for the silent body until something else gives up fails.
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func keepsOnlyTheStartOfAnOversizedBody() async throws {
        let server = try LoopbackHTTPServer { _ in
            .respond(SegmentResponse(statusCode: 500, body: Array(repeating: UInt8(ascii: "x"), count: 10_000)))
        }
        defer { server.stop() }
        var transport = AsyncHTTPClientTransport()
        transport.maximumResponseBytes = 100
        let response = try await transport.send(SegmentRequest(url: server.baseURL.appendingPathComponent("v1/batch")))
        #expect(response.statusCode == 500)
        #expect(response.body == Array(repeating: UInt8(ascii: "x"), count: 100))
    }

    /// A server that redirects the batch elsewhere, as a hijacked DNS name or a misconfigured proxy would.
    private func redirectingServer(status: Int, location: String) throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer { request in
            request.path == "/v1/batch"
                ? .respond(SegmentResponse(statusCode: status, headerFields: ["Location": location]))
                : .respond(SegmentResponse(statusCode: 200))
        }
    }

    @Test(arguments: [301, 302, 303, 307, 308])
    func theDefaultTransportReturnsARedirectInsteadOfFollowingIt(status: Int) async throws {
        let server = try redirectingServer(status: status, location: "/elsewhere")
        defer { server.stop() }
        let request = SegmentRequest(
            url: server.baseURL.appendingPathComponent("v1/batch"), body: Array(#"{"writeKey":"wk_123"}"#.utf8))
        let response = try await AsyncHTTPClientTransport().send(request)

        #expect(response.statusCode == status)
        #expect(response.headerField("Location") == "/elsewhere")
        // The body, which carries the write key, went to one address only.
        #expect(server.requests.map(\.path) == ["/v1/batch"])
    }

    @Test func aClientConfiguredToFollowRedirectsStillDoesNot() async throws {
        let server = try redirectingServer(status: 307, location: "/elsewhere")
        defer { server.stop() }
        let url = server.baseURL.appendingPathComponent("v1/batch")
        let configuration = HTTPClient.Configuration(redirectConfiguration: .follow(max: 5, allowCycles: false))
        let response = try await AsyncHTTPClientTransport.withTransport(configuration: configuration) { transport in
            try await transport.send(SegmentRequest(url: url))
        }

        #expect(response.statusCode == 307)
        #expect(server.requests.map(\.path) == ["/v1/batch"])
    }

    @Test func aTransportOfItsOwnPassesTheCompatibilityTest() async throws {
        try await AsyncHTTPClientTransport.withTransport { transport in
            try await TransportCompatibilityTest(transport: transport).run()
        }
    }

    @Test func aTransportUsedAfterItsScopeThrowsInsteadOfSending() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let escaped = try await AsyncHTTPClientTransport.withTransport { $0 }
        await #expect(throws: (any Error).self) {
            _ = try await escaped.send(SegmentRequest(url: server.baseURL.appendingPathComponent("v1/batch")))
        }
        #expect(server.requests.isEmpty)
    }

    @Test func connectionRefusedIsThrownNotReturned() async throws {
        let server = try LoopbackHTTPServer()
        let url = server.baseURL.appendingPathComponent("v1/batch")
        server.stop()
        // AsyncHTTPClient tries to connect again until the deadline, then throws the connection error.
        await #expect(throws: (any Error).self) {
            _ = try await AsyncHTTPClientTransport().send(SegmentRequest(url: url, timeout: .seconds(2)))
        }
    }
}
