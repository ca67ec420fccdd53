import Foundation
import Logging
import NIOCore
import RefinerSegment
import RefinerSegmentTesting
import RefinerWebhookIntake
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The settings fail closed, and the rules both servers share.
@Suite struct IntakeTests {
    private let base = ["SEGMENT_WRITE_KEY": "wk_x"]

    @Test func withoutASecretTheBridgeRefusesToStart() throws {
        #expect(throws: BridgeSettings.Invalid.self) { try BridgeSettings(environment: base) }
        #expect(throws: BridgeSettings.Invalid.self) {
            try BridgeSettings(environment: base.merging(["BRIDGE_ALLOW_UNAUTHENTICATED": "0"]) { $1 })
        }
    }

    @Test(arguments: ["", "short-secret"])
    func anEmptyOrShortSecretIsAConfigurationError(secret: String) throws {
        #expect(throws: BridgeSettings.Invalid.self) {
            try BridgeSettings(environment: base.merging(["REFINER_WEBHOOK_SECRET": secret]) { $1 })
        }
    }

    @Test(arguments: ["", "yes", "true"])
    func theOptInTakesOnlyAnExplicitOne(value: String) throws {
        #expect(throws: BridgeSettings.Invalid.self) {
            try BridgeSettings(environment: base.merging(["BRIDGE_ALLOW_UNAUTHENTICATED": value]) { $1 })
        }
    }

    @Test func unauthenticatedWebhooksNeedTheExplicitOptIn() throws {
        let settings = try BridgeSettings(
            environment: base.merging(["BRIDGE_ALLOW_UNAUTHENTICATED": "1", "BRIDGE_STORE_DIR": "store"]) { $1 })
        #expect(settings.secret == nil)
    }

    @Test func withoutAStoreDirectoryTheBridgeRefusesToStart() throws {
        let secured = base.merging(["REFINER_WEBHOOK_SECRET": "0123456789abcdef"]) { $1 }
        #expect { try BridgeSettings(environment: secured) } throws: { error in
            "\(error)".contains("BRIDGE_STORE_DIR")
        }
        for bad in [["BRIDGE_STORE_DIR": ""], ["BRIDGE_STORE_DIR": "store", "BRIDGE_STORE_MAX_BYTES": "4095"]] {
            #expect(throws: BridgeSettings.Invalid.self) {
                try BridgeSettings(environment: secured.merging(bad) { $1 })
            }
        }
        let settings = try BridgeSettings(environment: secured.merging(["BRIDGE_STORE_DIR": "store"]) { $1 })
        #expect(settings.storeDirectory == "store")
        #expect(settings.storeMaximumBytes == 256 << 20)
    }

    @Test func twoServersNeverShareAStoreDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stores-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let settings = try BridgeSettings(
            environment: base.merging([
                "REFINER_WEBHOOK_SECRET": "0123456789abcdef", "BRIDGE_STORE_DIR": directory.path,
            ]) { $1 })
        let first = try BridgeStores(settings: settings)
        #expect { try BridgeStores(settings: settings) } throws: { error in
            "\(error)".contains(directory.path)
        }
        _ = first
    }

    @Test func theStoreDirectoryIsPrivate() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("private-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        func settings(_ path: String) throws -> BridgeSettings {
            try BridgeSettings(
                environment: base.merging(["REFINER_WEBHOOK_SECRET": "0123456789abcdef", "BRIDGE_STORE_DIR": path]) {
                    $1
                })
        }

        // Created readable by its owner only, whatever the umask.
        let created = parent.appendingPathComponent("created").path
        _ = try BridgeStores(settings: settings(created))
        var status = stat()
        #expect(stat(created, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o700)

        // An existing directory others may enter: refused, and nothing written into it.
        let shared = parent.appendingPathComponent("shared").path
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(shared, 0o755)
        #expect { try BridgeStores(settings: settings(shared)) } throws: { error in
            "\(error)".contains("chmod 700")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: shared).isEmpty)
    }

    @Test func theSecretIsComparedWholeAndNeverPrinted() throws {
        let secret = WebhookSecret(headerName: "X-Refiner-Secret", value: "0123456789abcdef")
        #expect(secret.matches("0123456789abcdef"))
        #expect(!secret.matches("0123456789abcdeF"))
        #expect(!secret.matches("0123456789abcde"))
        #expect(!secret.matches("0123456789abcdef0"))
        #expect(!secret.matches(""))
        var dumped = ""
        dump(secret, to: &dumped)
        for shown in ["\(secret)", String(reflecting: secret), dumped] {
            #expect(!shown.contains("0123456789abcdef"))
        }
    }

    @Test func aShuttingDownPipelineIsAnswered503() async throws {
        let pipeline = try SegmentPipeline(writeKey: WriteKey("wk_x"), transport: RecordingTransport())
        pipeline.triggerGracefulShutdown()
        try await pipeline.run()  // drains at once: nothing was recorded
        let intake = RefinerWebhookIntake(
            secret: nil, profiles: MemoryProfileStore(), builder: try SegmentCallBuilder(), pipeline: pipeline)
        let answer = await intake.accept(Array(try webhookPayload().readableBytesView), logger: Logger(label: "test"))
        #expect(answer == .unavailable)
        #expect(answer.statusCode == 503)
    }

    @Test func aFullQueueIsAnswered503WithinTheBound() async throws {
        // Segment never answers; the queue holds one message (two, when the one in flight does not count).
        var configuration = SegmentPipeline.Configuration()
        configuration.queue = SegmentPipeline.QueueLimits(maximumMessages: 1)
        configuration.linger = .zero
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_x"), transport: ScriptedTransport([], whenDone: .hang), configuration: configuration)
        let run = Task { try await pipeline.run() }
        let intake = RefinerWebhookIntake(
            secret: nil, profiles: MemoryProfileStore(), builder: try SegmentCallBuilder(), pipeline: pipeline,
            acceptTimeout: .milliseconds(50))
        var answers: [WebhookAnswer] = []
        for index in 0..<4 {
            let body = Array(try webhookPayload(responseUUID: "full-\(index)").readableBytesView)
            answers.append(await intake.accept(body, logger: Logger(label: "test")))
        }
        #expect(answers.first == .accepted)
        #expect(answers.suffix(2).allSatisfy { $0 == .unavailable })
        // Nothing half-accepted by the ones turned away.
        #expect(await pipeline.counters.accepted == answers.filter { $0 == .accepted }.count)
        run.cancel()
        try await run.value
    }

    @Test func anOversizedAnswerDoesNotPoisonTheUsersProfile() async throws {
        let pipeline = try SegmentPipeline(writeKey: WriteKey("wk_x"), transport: RecordingTransport())
        let intake = RefinerWebhookIntake(
            secret: nil, profiles: MemoryProfileStore(), builder: try SegmentCallBuilder(), pipeline: pipeline)
        let huge = String(buffer: try webhookPayload(responseUUID: "huge"))
            .replacingOccurrences(
                of: "\"Missing features\"",
                with: "\"Missing features\", \"forged\": \"\(String(repeating: "x", count: 40_000))\"")
        let first = await intake.accept(Array(huge.utf8), logger: Logger(label: "test"))
        let next = await intake.accept(Array(try webhookPayload().readableBytesView), logger: Logger(label: "test"))
        #expect(first == .invalid)
        #expect(next == .accepted)
    }

    @Test func theUndeliveredFileIsPrivateAndNeverFollowsALink() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "undelivered-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let message = SegmentMessage(kind: .identify, messageID: "m1", json: Array(#"{"messageId":"m1"}"#.utf8))

        let file = directory.appendingPathComponent("undelivered.jsonl").path
        try UndeliveredFile(path: file).append([message])
        var status = stat()
        #expect(stat(file, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "{\"messageId\":\"m1\"}\n")

        // A link planted where the file should be: refused, and its target untouched.
        let target = directory.appendingPathComponent("other.txt").path
        try "mine".write(toFile: target, atomically: false, encoding: .utf8)
        let link = directory.appendingPathComponent("linked.jsonl").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: UndeliveredFile.Failure.self) { try UndeliveredFile(path: link).append([message]) }
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "mine")

        // A file others can read: refused.
        let open = directory.appendingPathComponent("open.jsonl").path
        _ = FileManager.default.createFile(atPath: open, contents: nil, attributes: [.posixPermissions: 0o644])
        #expect(throws: UndeliveredFile.Failure.self) { try UndeliveredFile(path: open).append([message]) }
    }
}
