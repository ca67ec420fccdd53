import Foundation
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentTesting
import RefinerVaporExample
import RefinerWebhookIntake
import Testing
import Vapor
import VaporTesting

/// The Vapor example answers like the Hummingbird bridge, end to end: Vapor's in-memory tester in, a
/// loopback Segment stand-in out.
@Suite(.serialized) struct RefinerVaporExampleTests {
    static let secret = "vapor-test-secret-0123456789"

    private func payload() throws -> ByteBuffer {
        let url = try #require(
            Bundle.module.url(forResource: "Fixtures/refiner-webhook-completed-survey", withExtension: "json"))
        return ByteBuffer(bytes: Array(try Data(contentsOf: url)))
    }

    private func settings(_ segment: LoopbackHTTPServer) throws -> BridgeSettings {
        try BridgeSettings(environment: [
            "SEGMENT_WRITE_KEY": "wk_vapor_secret",
            "SEGMENT_ENDPOINT": segment.baseURL.absoluteString,
            "REFINER_WEBHOOK_SECRET": Self.secret,
            "BRIDGE_STORE_DIR": FileManager.default.temporaryDirectory
                .appendingPathComponent("vapor-test-store-\(UUID().uuidString)").path,
        ])
    }

    @Test func aRealWebhookBecomesTheRightCallAtSegment() async throws {
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let settings = try settings(segment)
        let stores = try BridgeStores(settings: settings)
        let pipeline = try SegmentPipeline(
            writeKey: settings.writeKey, transport: AsyncHTTPClientTransport(), configuration: settings.pipeline,
            store: stores.messages)

        let run = Task { try await pipeline.run() }
        try await withApp { app in
            try RefinerVaporExample.configure(app, settings: settings, pipeline: pipeline, profiles: stores.profiles)
            try await app.testing().test(
                .POST, "webhooks/refiner", headers: ["X-Refiner-Secret": Self.secret], body: try payload()
            ) { response in
                #expect(response.status == .ok)
            }
            try await app.testing().test(.POST, "webhooks/refiner", body: try payload()) { response in
                #expect(response.status == .unauthorized)
            }
            try await app.testing().test(
                .POST, "webhooks/refiner", headers: ["X-Refiner-Secret": "vapor-test-secret-0123456780"],
                body: try payload()
            ) { response in
                #expect(response.status == .unauthorized)
            }
            try await app.testing().test(
                .POST, "webhooks/refiner", headers: ["X-Refiner-Secret": Self.secret],
                body: ByteBuffer(string: "not json")
            ) { response in
                #expect(response.status == .unprocessableEntity)
            }
            let huge = ByteBuffer(repeating: UInt8(ascii: " "), count: RefinerWebhookIntake.maximumBodyBytes + 1)
            try await app.testing().test(
                .POST, "webhooks/refiner", headers: ["X-Refiner-Secret": Self.secret], body: huge
            ) { response in
                #expect(response.status == .payloadTooLarge)
            }
        }
        await pipeline.flush()
        pipeline.triggerGracefulShutdown()
        try await run.value
        #expect(await pipeline.counters.delivered == 1)
        let request = try #require(segment.acceptedRequests.first)
        #expect(segment.acceptedRequests.count == 1)
        #expect(request.headerField("Authorization") == WriteKey("wk_vapor_secret").basicAuthorization)
        let body = String(decoding: request.body, as: UTF8.self)
        #expect(body.contains(#""messageId":"refiner-7c508c60-4ea2-11ed-9302-57708fe11d26-identify""#))
        #expect(body.contains(#""userId":"sdk@30""#))
    }
}
