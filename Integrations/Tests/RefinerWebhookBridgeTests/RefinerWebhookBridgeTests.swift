import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentTesting
import RefinerWebhookBridge
import RefinerWebhookIntake
import Testing

/// The bridge end to end: a real Hummingbird server on loopback (HummingbirdTesting's `.live`), the
/// pipeline on the AsyncHTTPClient transport, and a loopback Segment stand-in.
@Suite(.serialized) struct RefinerWebhookBridgeTests {
    private func secretHeader(_ value: String = testSecret) -> HTTPFields {
        [HTTPField.Name("X-Refiner-Secret")!: value]
    }

    /// The bridge as `RefinerWebhookBridge.run` makes it: on the durable stores in the settings' directory.
    private func makeBridge(_ settings: BridgeSettings) async throws -> some ApplicationProtocol {
        let stores = try BridgeStores(settings: settings)
        let pipeline = try SegmentPipeline(
            writeKey: settings.writeKey, transport: AsyncHTTPClientTransport(), configuration: settings.pipeline,
            store: stores.messages)
        return try await RefinerWebhookBridge.makeApplication(
            settings: settings, pipeline: pipeline, profiles: stores.profiles, logger: Logger(label: "bridge-test"))
    }

    @Test func aRealWebhookBecomesTheRightCallAtSegment() async throws {
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let app = try await makeBridge(try bridgeSettings(segment: segment))

        try await app.test(.live) { client in
            let response = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader(), body: try webhookPayload())
            #expect(response.status == .ok)
        }
        // The test ended with a graceful shutdown, which drained the pipeline.

        let request = try #require(segment.acceptedRequests.first)
        #expect(segment.acceptedRequests.count == 1)
        #expect(request.path == "/v1/batch")
        #expect(request.headerField("Authorization") == WriteKey("wk_bridge_secret_key").basicAuthorization)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        let batch = try #require(body["batch"] as? [[String: Any]])
        let identify = try #require(batch.first)
        #expect(batch.count == 1)  // the fixture's account has no remote_id: no group call
        #expect(identify["type"] as? String == "identify")
        #expect(identify["messageId"] as? String == "refiner-7c508c60-4ea2-11ed-9302-57708fe11d26-identify")
        #expect(identify["userId"] as? String == "sdk@30")
        #expect(identify["timestamp"] as? String == "2022-10-18T05:05:45.000Z")
        let traits = try #require(identify["traits"] as? [String: Any])
        #expect(traits["refiner_email"] as? String == "sdk30@gmail.com")
        #expect(traits["refiner_why_did_you_cancel_your_subscription"] as? String == "Missing features")
    }

    @Test func forgedWebhooksAreRefusedAndReachNobody() async throws {
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let app = try await makeBridge(try bridgeSettings(segment: segment))

        try await app.test(.live) { client in
            let payload = try webhookPayload()
            let missing = try await client.execute(uri: "/webhooks/refiner", method: .post, body: payload)
            #expect(missing.status == .unauthorized)
            let wrong = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader("s3cr3t-token-for-tests-0123456788"),
                body: payload)
            #expect(wrong.status == .unauthorized)
            let prefix = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader(String(testSecret.dropLast())),
                body: payload)
            #expect(prefix.status == .unauthorized)
            // A huge body, even with the secret, is refused before it is decoded.
            let huge = ByteBuffer(repeating: UInt8(ascii: " "), count: RefinerWebhookIntake.maximumBodyBytes + 1)
            let large = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader(), body: huge)
            #expect(large.status == .contentTooLarge)
        }

        #expect(segment.requests.isEmpty)
    }

    @Test func aFloodWhileSegmentStallsIsAnswered503NotHeld() async throws {
        // Segment takes a second per batch; the store holds a few webhooks; a webhook waits 0.2 s for room.
        let segment = try LoopbackHTTPServer { _ in .delay(.seconds(1), then: .status(200, body: "{}")) }
        defer { segment.stop() }
        let settings = try bridgeSettings(
            segment: segment, ["BRIDGE_ACCEPT_SECONDS": "0.2", "BRIDGE_STORE_MAX_BYTES": "4096"])
        let app = try await makeBridge(settings)

        let answers = try await app.test(.live) { client in
            let port = try #require(client.port)
            return try await AsyncHTTPClientTransport.withTransport { transport in
                try await withThrowingTaskGroup(of: (String, Int).self) { group in
                    for index in 0..<20 {
                        let uuid = "flood-\(index)"
                        let body = try webhookPayload(responseUUID: uuid)
                        group.addTask {
                            let response = try await transport.send(
                                SegmentRequest(
                                    url: URL(string: "http://127.0.0.1:\(port)/webhooks/refiner")!,
                                    headerFields: ["X-Refiner-Secret": testSecret],
                                    body: Array(body.readableBytesView),
                                    timeout: .seconds(30)))
                            return (uuid, response.statusCode)
                        }
                    }
                    var answers: [(String, Int)] = []
                    for try await answer in group { answers.append(answer) }
                    return answers
                }
            }
        }

        // Every webhook was answered, each 200 or 503; some were turned away.
        #expect(answers.count == 20)
        #expect(answers.allSatisfy { [200, 503].contains($0.1) })
        #expect(answers.contains { $0.1 == 503 })
        // Every webhook answered 200 reached Segment (the shutdown drained them); none answered 503 did.
        let accepted = Set(answers.filter { $0.1 == 200 }.map { "refiner-\($0.0)-identify" })
        #expect(!accepted.isEmpty)
        #expect(Set(try acceptedMessageIDs(segment)) == accepted)
    }

    @Test func aClientThatNeverFinishesItsRequestHeadIsDisconnected() async throws {
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let app = try await makeBridge(try bridgeSettings(segment: segment, ["BRIDGE_IDLE_TIMEOUT_SECONDS": "0.5"]))

        try await app.test(.live) { client in
            let port = try #require(client.port)
            // Slowloris: a request head that never ends, and one whose body never comes.
            let partialHead = Array("POST /webhooks/refiner HTTP/1.1\r\nHost: localhost\r\nX-Refiner-Secret: ".utf8)
            let missingBody = Array(
                "POST /webhooks/refiner HTTP/1.1\r\nHost: localhost\r\nX-Refiner-Secret: \(testSecret)\r\nContent-Length: 100\r\n\r\n{"
                    .utf8)
            let headResult = try await SlowClient.sendAndWaitForClose(partialHead, port: port)
            #expect(headResult.closedByServer)
            let bodyResult = try await SlowClient.sendAndWaitForClose(missingBody, port: port)
            #expect(bodyResult.closedByServer)
            // Either cut off silently or answered 408 first; never answered 200.
            #expect(!String(decoding: bodyResult.received, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
        #expect(segment.requests.isEmpty)
    }

    @Test func anotherEventIsAnswered200AndSendsNothing() async throws {
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let app = try await makeBridge(try bridgeSettings(segment: segment))
        let payload = String(buffer: try webhookPayload())
            .replacingOccurrences(of: "\"Completed Survey\"", with: "\"Entered Segment\"")

        try await app.test(.live) { client in
            let response = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader(), body: ByteBuffer(string: payload))
            #expect(response.status == .ok)
            let broken = try await client.execute(
                uri: "/webhooks/refiner", method: .post, headers: secretHeader(),
                body: ByteBuffer(string: "{\"triggered"))
            #expect(broken.status == .unprocessableContent)
        }
        #expect(segment.requests.isEmpty)
    }
}
