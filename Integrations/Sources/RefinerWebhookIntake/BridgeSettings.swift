import Foundation
import RefinerSegment

/// The bridge's settings, read from the environment, so that the write key and the webhook secret never
/// appear in a command line, a file in the image, or a log. Both example servers read the same ones.
///
/// | Variable | Meaning | Default |
/// | --- | --- | --- |
/// | `SEGMENT_WRITE_KEY` | the Segment source's write key | required |
/// | `SEGMENT_REGION` | `us` or `eu` | `us` |
/// | `SEGMENT_ENDPOINT` | any Segment-compatible base URL, instead of a region | |
/// | `REFINER_WEBHOOK_SECRET` | the secret each webhook must carry (16 characters or more) | required |
/// | `REFINER_WEBHOOK_SECRET_HEADER` | the header that carries it | `X-Refiner-Secret` |
/// | `BRIDGE_ALLOW_UNAUTHENTICATED` | `1` accepts webhooks without a secret (never on a reachable address) | `0` |
/// | `BRIDGE_HOST`, `BRIDGE_PORT` | where the server listens | `127.0.0.1`, `8080` |
/// | `BRIDGE_ACCEPT_SECONDS` | how long a webhook may wait for room in the queue before it is answered 503 | `2` |
/// | `BRIDGE_IDLE_TIMEOUT_SECONDS` | how long a connection may send nothing, or take to send one request | `15` |
/// | `BRIDGE_MAX_CONNECTIONS` | the most connections open at once; more wait in the listen backlog | `256` |
/// | `BRIDGE_SHUTDOWN_SECONDS` | how long the server and the pipeline may take to stop together | `10` |
/// | `BRIDGE_STORE_DIR` | the durable store: webhooks answered 200 wait there until delivered | required |
/// | `BRIDGE_STORE_MAX_BYTES` | how much the store may hold before webhooks are answered 503 | `268435456` (256 MiB) |
/// | `BRIDGE_UNDELIVERED_FILE` | messages that failed for good, JSON Lines | `refiner-webhook-bridge-undelivered.jsonl` |
///
/// An empty value is a configuration error, never a default: `REFINER_WEBHOOK_SECRET=` set by a broken
/// deployment template must not open the endpoint. `BRIDGE_STORE_DIR` has no default either: a 200 tells
/// Refiner never to send the webhook again, so the directory must be one the operator chose to keep (a
/// volume), not whatever working directory a container happens to start in.
public struct BridgeSettings: Sendable {
    /// The Segment source's write key.
    public var writeKey: WriteKey
    /// Where and how the pipeline sends.
    public var pipeline: SegmentPipeline.Configuration
    /// The secret each webhook must carry; `nil` only when unauthenticated webhooks were allowed.
    public var secret: WebhookSecret?
    /// The address the server listens on.
    public var host: String
    /// The port the server listens on.
    public var port: Int
    /// How long a webhook waits for room in the queue before it is answered 503.
    public var acceptTimeout: Duration
    /// How long a connection may be idle, and how long one request may take to arrive.
    public var idleTimeout: Duration
    /// The most connections open at once.
    public var maximumConnections: Int
    /// How long the server and the pipeline may take to shut down together.
    public var shutdownTimeout: Duration
    /// The directory of the durable store: the accepted messages (a `FileMessageStore`) and the collected
    /// profiles (a `FileProfileStore`, `profiles.log`).
    public var storeDirectory: String
    /// The most bytes of message files the store holds; past it, webhooks are answered 503.
    public var storeMaximumBytes: Int
    /// Where messages that failed for good (Segment refused them, or the retries ran out) are appended.
    public var undeliveredFile: String

    /// The shortest secret accepted: a guessable secret protects nothing.
    public static let minimumSecretLength = 16
    /// The smallest store accepted: a few webhooks.
    public static let minimumStoreBytes = 4096

    /// A setting that cannot be used, named.
    public struct Invalid: Error, CustomStringConvertible {
        /// What is wrong and how to fix it.
        public var description: String
    }

    /// Reads the settings.
    ///
    /// - Throws: ``Invalid`` naming the first variable that is missing, empty or malformed.
    public init(environment: [String: String]) throws(Invalid) {
        func value(_ name: String) throws(Invalid) -> String? {
            guard let value = environment[name] else { return nil }
            guard !value.isEmpty else {
                throw Invalid(description: "\(name) is set but empty; unset it or give it a value")
            }
            return value
        }
        func seconds(_ name: String, default defaultValue: Double, minimum: Double) throws(Invalid) -> Duration {
            let text = try value(name)
            guard let seconds = Double(text ?? String(defaultValue)), seconds.isFinite, seconds >= minimum,
                seconds <= 86_400
            else {
                throw Invalid(description: "\(name) is not a number of seconds from \(minimum) to 86400")
            }
            return .seconds(seconds)
        }

        guard let writeKey = try value("SEGMENT_WRITE_KEY") else {
            throw Invalid(description: "set SEGMENT_WRITE_KEY to the Segment source's write key")
        }
        self.writeKey = WriteKey(writeKey)

        pipeline = SegmentPipeline.Configuration()
        switch (try value("SEGMENT_REGION"), try value("SEGMENT_ENDPOINT")) {
        case (.some, .some):
            throw Invalid(description: "set SEGMENT_REGION or SEGMENT_ENDPOINT, not both")
        case (let region?, nil):
            guard let endpoint = SegmentEndpoint(region: region) else {
                throw Invalid(description: "SEGMENT_REGION is '\(region)'; use us or eu")
            }
            pipeline.endpoint = endpoint
        case (nil, let endpoint?):
            guard let url = URL(string: endpoint), url.host != nil else {
                throw Invalid(description: "SEGMENT_ENDPOINT is not a URL")
            }
            pipeline.endpoint = SegmentEndpoint(baseURL: url)
        case (nil, nil):
            pipeline.endpoint = .us
        }

        let allowsUnauthenticated: Bool
        switch try value("BRIDGE_ALLOW_UNAUTHENTICATED") {
        case nil, "0": allowsUnauthenticated = false
        case "1": allowsUnauthenticated = true
        default: throw Invalid(description: "BRIDGE_ALLOW_UNAUTHENTICATED is 0 or 1")
        }
        if let secret = try value("REFINER_WEBHOOK_SECRET") {
            guard secret.count >= Self.minimumSecretLength else {
                throw Invalid(
                    description: "REFINER_WEBHOOK_SECRET is shorter than \(Self.minimumSecretLength) characters")
            }
            let header = try value("REFINER_WEBHOOK_SECRET_HEADER") ?? "X-Refiner-Secret"
            guard Self.isToken(header) else {
                throw Invalid(description: "REFINER_WEBHOOK_SECRET_HEADER is not a header name")
            }
            self.secret = WebhookSecret(headerName: header, value: secret)
        } else if allowsUnauthenticated {
            self.secret = nil
        } else {
            throw Invalid(
                description: """
                    set REFINER_WEBHOOK_SECRET to the secret token configured in Refiner's webhook \
                    (or BRIDGE_ALLOW_UNAUTHENTICATED=1 to accept webhooks from anyone, for a local test)
                    """)
        }

        host = try value("BRIDGE_HOST") ?? "127.0.0.1"
        guard let port = Int(try value("BRIDGE_PORT") ?? "8080"), (0...65535).contains(port) else {
            throw Invalid(description: "BRIDGE_PORT is not a port number")
        }
        self.port = port
        acceptTimeout = try seconds("BRIDGE_ACCEPT_SECONDS", default: 2, minimum: 0)
        idleTimeout = try seconds("BRIDGE_IDLE_TIMEOUT_SECONDS", default: 15, minimum: 0.1)
        guard let connections = Int(try value("BRIDGE_MAX_CONNECTIONS") ?? "256"), connections >= 1 else {
            throw Invalid(description: "BRIDGE_MAX_CONNECTIONS is not a positive number")
        }
        maximumConnections = connections
        shutdownTimeout = try seconds("BRIDGE_SHUTDOWN_SECONDS", default: 10, minimum: 0)
        // The pipeline's own drain ends within the same bound as the whole shutdown.
        pipeline.shutdownGracePeriod = shutdownTimeout
        guard let storeDirectory = try value("BRIDGE_STORE_DIR") else {
            throw Invalid(
                description: """
                    set BRIDGE_STORE_DIR to a directory on storage that outlives the process (a volume): \
                    webhooks answered 200 wait there until Segment has them
                    """)
        }
        self.storeDirectory = storeDirectory
        guard let storeBytes = Int(try value("BRIDGE_STORE_MAX_BYTES") ?? String(256 << 20)),
            storeBytes >= Self.minimumStoreBytes
        else {
            throw Invalid(
                description: "BRIDGE_STORE_MAX_BYTES is not a number of bytes, \(Self.minimumStoreBytes) or more")
        }
        storeMaximumBytes = storeBytes
        undeliveredFile = try value("BRIDGE_UNDELIVERED_FILE") ?? "refiner-webhook-bridge-undelivered.jsonl"
    }

    /// Whether `name` is an HTTP field name (RFC 9110 `token`).
    static func isToken(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    return true
                default:
                    return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
                }
            }
    }
}
