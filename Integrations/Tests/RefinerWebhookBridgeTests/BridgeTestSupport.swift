import Foundation
import Logging
import NIOCore
import RefinerSegment
import RefinerSegmentTesting
import RefinerWebhookIntake
import Testing

/// The real "Completed Survey" payload, with its response uuid replaced so that each copy is a response
/// of its own.
func webhookPayload(responseUUID: String = "7c508c60-4ea2-11ed-9302-57708fe11d26") throws -> ByteBuffer {
    let url = try #require(
        Bundle.module.url(forResource: "Fixtures/refiner-webhook-completed-survey", withExtension: "json"))
    let text = try String(contentsOf: url, encoding: .utf8)
        .replacingOccurrences(of: "7c508c60-4ea2-11ed-9302-57708fe11d26", with: responseUUID)
    return ByteBuffer(string: text)
}

/// The secret the tests configure.
let testSecret = "s3cr3t-token-for-tests-0123456789"

/// Settings for a bridge on an ephemeral port that sends to `segment`.
func bridgeSettings(
    segment: LoopbackHTTPServer,
    _ overrides: [String: String] = [:]
) throws -> BridgeSettings {
    var environment = [
        "SEGMENT_WRITE_KEY": "wk_bridge_secret_key",
        "SEGMENT_ENDPOINT": segment.baseURL.absoluteString,
        "REFINER_WEBHOOK_SECRET": testSecret,
        "BRIDGE_PORT": "0",
        "BRIDGE_UNDELIVERED_FILE": FileManager.default.temporaryDirectory
            .appendingPathComponent("bridge-test-\(UUID().uuidString).jsonl").path,
        "BRIDGE_STORE_DIR": FileManager.default.temporaryDirectory
            .appendingPathComponent("bridge-test-store-\(UUID().uuidString)").path,
    ]
    environment.merge(overrides) { $1 }
    return try BridgeSettings(environment: environment)
}

/// The messageIds of every batch a Segment stand-in accepted, in order.
func acceptedMessageIDs(_ server: LoopbackHTTPServer) throws -> [String] {
    try server.acceptedRequests.flatMap { request -> [String] in
        let object = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        let batch = try #require(object["batch"] as? [[String: Any]])
        return batch.compactMap { $0["messageId"] as? String }
    }
}
