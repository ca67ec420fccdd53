import Foundation
import HTTPTypes
import Hummingbird
import RefinerSegment

/// The bridge's settings, read from the environment, so that the write key and the webhook secret never
/// appear in a command line, a file in the image, or a log.
///
/// | Variable | Meaning | Default |
/// | --- | --- | --- |
/// | `SEGMENT_WRITE_KEY` | the Segment source's write key | required |
/// | `SEGMENT_REGION` | `us` or `eu` | `us` |
/// | `SEGMENT_ENDPOINT` | any Segment-compatible base URL, instead of a region | |
/// | `REFINER_WEBHOOK_SECRET` | the secret each webhook must carry | none: every request is accepted |
/// | `REFINER_WEBHOOK_SECRET_HEADER` | the header that carries it | `X-Refiner-Secret` |
/// | `BRIDGE_HOST`, `BRIDGE_PORT` | where the server listens | `127.0.0.1`, `8080` |
/// | `BRIDGE_SHUTDOWN_SECONDS` | how long shutdown keeps delivering before it hands messages back | `10` |
/// | `BRIDGE_UNDELIVERED_FILE` | undelivered messages, JSON Lines | `refiner-webhook-bridge-undelivered.jsonl` |
struct BridgeSettings: Sendable {
    var writeKey: WriteKey
    var pipeline: SegmentPipeline.Configuration
    var secret: WebhookSecret?
    var host: String
    var port: Int
    var shutdownSeconds: Double
    var undeliveredFile: String

    /// A setting that cannot be used, named.
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(environment: [String: String]) throws(Invalid) {
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let writeKey = value("SEGMENT_WRITE_KEY") else {
            throw Invalid(description: "set SEGMENT_WRITE_KEY to the Segment source's write key")
        }
        self.writeKey = WriteKey(writeKey)

        pipeline = SegmentPipeline.Configuration()
        switch (value("SEGMENT_REGION"), value("SEGMENT_ENDPOINT")) {
        case (.some, .some):
            throw Invalid(description: "set SEGMENT_REGION or SEGMENT_ENDPOINT, not both")
        case (let region?, nil):
            guard let endpoint = SegmentEndpoint(region: region) else {
                throw Invalid(description: "SEGMENT_REGION is '\(region)'; use us or eu")
            }
            pipeline.endpoint = endpoint
        case (nil, let endpoint?):
            guard let url = URL(string: endpoint), url.host != nil else {
                throw Invalid(description: "SEGMENT_ENDPOINT is not a URL: '\(endpoint)'")
            }
            pipeline.endpoint = SegmentEndpoint(baseURL: url)
        case (nil, nil):
            pipeline.endpoint = .us
        }

        if let secret = value("REFINER_WEBHOOK_SECRET") {
            let header = value("REFINER_WEBHOOK_SECRET_HEADER") ?? "X-Refiner-Secret"
            guard let headerName = HTTPField.Name(header) else {
                throw Invalid(description: "REFINER_WEBHOOK_SECRET_HEADER is not a header name: '\(header)'")
            }
            self.secret = WebhookSecret(headerName: headerName, value: secret)
        } else {
            self.secret = nil
        }

        host = value("BRIDGE_HOST") ?? "127.0.0.1"
        guard let port = Int(value("BRIDGE_PORT") ?? "8080"), (0...65535).contains(port) else {
            throw Invalid(description: "BRIDGE_PORT is not a port number")
        }
        self.port = port
        guard let seconds = Double(value("BRIDGE_SHUTDOWN_SECONDS") ?? "10"), seconds >= 0, seconds.isFinite else {
            throw Invalid(description: "BRIDGE_SHUTDOWN_SECONDS is not a number of seconds")
        }
        shutdownSeconds = seconds
        undeliveredFile = value("BRIDGE_UNDELIVERED_FILE") ?? "refiner-webhook-bridge-undelivered.jsonl"
    }
}
