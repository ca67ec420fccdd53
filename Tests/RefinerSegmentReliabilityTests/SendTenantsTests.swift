import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentTesting
import Testing

/// `send --tenants FILE` over loopback HTTP: three workspaces in one run, one of them down.
@Suite struct SendTenantsTests {
    static let keys = [
        "acme": "wk_acmeTENANTsecret01", "globex": "wk_globexTENANTsecret2", "down": "wk_downTENANTsecret03",
    ]

    /// A response in the JSON form for `tenant`, or without a tenant field.
    static func response(_ id: String, tenant: String?) -> String {
        let field = tenant.map { #""tenant": "\#($0)", "# } ?? ""
        return #"{\#(field)"id": "\#(id)", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "s"}, "#
            + #""user": {"id": "u-\#(id)"}, "account": {"id": "a1"}, "#
            + #""answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]}"#
    }

    /// Writes a tenants file and returns its path.
    static func tenantsFile(_ object: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("refiner-tenants-\(UUID().uuidString).json").path
        try Data(object.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func messageIDs(_ requests: [LoopbackHTTPServer.Request]) throws -> [String] {
        try requests.flatMap { request in
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            return (body["batch"] as? [[String: Any]] ?? []).compactMap { $0["messageId"] as? String }
        }
    }

    /// Three tenants (one key inline, one from the environment, one inline whose endpoint answers 503), a
    /// record for a tenant the file does not hold, and records without a tenant field for `--tenant`.
    static func run(
        acme: LoopbackHTTPServer,
        globex: LoopbackHTTPServer,
        down: LoopbackHTTPServer
    ) async throws -> (status: Int32, capture: ToolCapture) {
        let file = try tenantsFile(
            #"{"acme": {"writeKey": "\#(keys["acme"]!)", "endpoint": "\#(acme.baseURL.absoluteString)"}, "#
                + #""globex": {"writeKeyEnv": "GLOBEX_KEY", "endpoint": "\#(globex.baseURL.absoluteString)"}, "#
                + #""down": {"writeKey": "\#(keys["down"]!)", "endpoint": "\#(down.baseURL.absoluteString)"}}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let input =
            [
                response("a1", tenant: "acme"), response("g1", tenant: "globex"), response("d1", tenant: "down"),
                response("x1", tenant: "initech"), response("a2", tenant: nil), response("g2", tenant: "globex"),
                response("d2", tenant: "down"),
            ].joined(separator: "\n") + "\n"
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(input: Array(input.utf8), environment: ["GLOBEX_KEY": keys["globex"]!])
        ).run([
            "send", "--tenants", file, "--tenant", "acme", "--failed", "failed.jsonl", "--max-retry-duration", "1",
        ])
        return (status, capture)
    }

    @Test func threeTenantsOneDownTheOthersFinishAndTheDownOnesMessagesGoToItsFailedFile() async throws {
        let acme = try LoopbackHTTPServer()
        let globex = try LoopbackHTTPServer()
        let down = try LoopbackHTTPServer { _ in .respond(SegmentResponse(statusCode: 503)) }
        defer {
            acme.stop()
            globex.stop()
            down.stop()
        }
        let (status, capture) = try await Self.run(acme: acme, globex: globex, down: down)
        // A record was skipped and some messages failed.
        #expect(status == 1, "\(capture.error)")
        #expect(
            try Self.messageIDs(acme.requests).sorted()
                == ["refiner-a1-group", "refiner-a1-identify", "refiner-a2-group", "refiner-a2-identify"])
        #expect(
            try Self.messageIDs(globex.requests).sorted()
                == ["refiner-g1-group", "refiner-g1-identify", "refiner-g2-group", "refiner-g2-identify"])
        // Each workspace got its own key.
        for (server, tenant) in [(acme, "acme"), (globex, "globex"), (down, "down")] {
            let expected = WriteKey(Self.keys[tenant]!).basicAuthorization
            #expect(server.requests.allSatisfy { $0.headerField("Authorization") == expected }, "\(tenant)")
        }
        #expect(down.requests.count >= 2)  // retried, then failed by the retry policy
        // The unknown tenant is named with its line.
        #expect(capture.error.contains("line 4: skipped: unknown tenant 'initech'"), "\(capture.error)")
        // The down tenant's messages, and only those, are in its own failed file.
        #expect(Set(capture.files.keys) == ["failed.down.jsonl"])
        let failed = try #require(capture.files["failed.down.jsonl"])
        #expect(
            try SendInput.ids(inFailedFile: failed).sorted()
                == ["refiner-d1-group", "refiner-d1-identify", "refiner-d2-group", "refiner-d2-identify"])
        // The others finished while the down tenant was still retrying: their deliveries come first.
        let error = capture.error
        let lastDelivery = [
            error.range(of: "refiner-segment: acme: delivered", options: .backwards),
            error.range(of: "refiner-segment: globex: delivered", options: .backwards),
        ]
        let firstFailure = error.range(of: "refiner-segment: down: failed")
        #expect(lastDelivery.allSatisfy { $0 != nil } && firstFailure != nil)
        if let failure = firstFailure {
            #expect(lastDelivery.compactMap { $0 }.allSatisfy { $0.lowerBound < failure.lowerBound })
        }
        // A summary per tenant, then the run's.
        #expect(error.contains("refiner-segment: acme: 4 messages: 4 delivered, 0 failed"))
        #expect(error.contains("refiner-segment: globex: 4 messages: 4 delivered, 0 failed"))
        #expect(error.contains("refiner-segment: down: 4 messages: 0 delivered, 4 failed"))
        #expect(error.contains("4 undelivered messages written to failed.down.jsonl"))
        #expect(error.contains("6 of 7 lines read, 12 messages for 3 tenants: 8 delivered, 4 failed"))
    }

    @Test func sendingATenantsFailedFileAgainWithItsTenantDeliversIt() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let file = try Self.tenantsFile(#"{"acme": {"writeKey": "wk_a", "endpoint": "\#(server.baseURL)"}}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // A failed file's unit line: an identify and its group, without a tenant field.
        var store = InMemoryProfileStore()
        let pair = try store.process(
            try SurveyResponse(json: Array(Self.response("r1", tenant: nil).utf8)), with: SegmentCallBuilder())
        let line = "[" + pair.map { String(decoding: $0.json, as: UTF8.self) }.joined(separator: ",") + "]\n"
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(io: capture.io(input: Array(line.utf8), environment: [:]))
            .run(["send", "--tenants", file, "--tenant", "acme"])
        #expect(status == 0, "\(capture.error)")
        #expect(try Self.messageIDs(server.requests) == ["refiner-r1-identify", "refiner-r1-group"])
    }

    @Test(arguments: [
        (#"[1]"#, "must hold a JSON object"),
        (#"{"a/b": {"writeKey": "k"}}"#, "tenant name 'a/b' may hold only"),
        (#"{"acme": {"region": "eu"}}"#, "tenant 'acme': give writeKey or writeKeyEnv"),
        (#"{"acme": {"writeKeyEnv": "NOT_SET_ANYWHERE"}}"#, "NOT_SET_ANYWHERE is not set"),
        (#"{"acme": {"writeKey": "k", "region": "mars"}}"#, "tenant 'acme': region must be us or eu"),
        (#"{"acme": {"writeKey": "k", "endpoint": "nope"}}"#, "tenant 'acme': endpoint must be a URL"),
        (#"{"acme": {"writeKey": "k", "colour": "red"}}"#, "tenant 'acme': unknown setting 'colour'"),
    ])
    func aBadTenantsFileIsAUsageErrorNamingTheTenant(_ contents: String, _ expected: String) async throws {
        let file = try Self.tenantsFile(contents)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(io: capture.io(input: [], environment: [:]))
            .run(["send", "--tenants", file])
        #expect(status == 2)
        #expect(capture.error.contains(expected), "\(capture.error)")
    }

    @Test func aDefaultTenantNotInTheFileIsAUsageError() async throws {
        let file = try Self.tenantsFile(#"{"acme": {"writeKey": "k"}}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(io: capture.io(input: [], environment: [:]))
            .run(["send", "--tenants", file, "--tenant", "globex"])
        #expect(status == 2)
        #expect(capture.error.contains("--tenant 'globex' is not a tenant of"))
    }
}

extension SecretsTests {
    /// Every tenant's key, its Basic credentials, and every 10-character piece of either.
    static func forbiddenPieces(of keys: [String]) -> [String] {
        var pieces: Set<String> = []
        for key in keys {
            let basic = String(WriteKey(key).basicAuthorization.dropFirst("Basic ".count))
            for secret in [key, basic] {
                let characters = Array(secret)
                for start in 0...(characters.count - 10) { pieces.insert(String(characters[start..<start + 10])) }
            }
        }
        return pieces.sorted()
    }

    @Test func sendTenantsShowsNoTenantsKeyWhenServersEchoAndOneIsDown() async throws {
        // Every server echoes the request (headers and body, both carrying the tenant's key); one refuses.
        let acme = try LoopbackHTTPServer(handler: Self.echo(200))
        let globex = try LoopbackHTTPServer(handler: Self.echo(200))
        let down = try LoopbackHTTPServer(handler: Self.echo(400))
        defer {
            acme.stop()
            globex.stop()
            down.stop()
        }
        let (status, capture) = try await SendTenantsTests.run(acme: acme, globex: globex, down: down)
        #expect(status == 1)
        #expect(capture.files["failed.down.jsonl"] != nil)
        let forbidden = Self.forbiddenPieces(of: Array(SendTenantsTests.keys.values))
        var texts = [("stdout", capture.output), ("stderr", capture.error)]
        for (path, bytes) in capture.files { texts.append((path, String(decoding: bytes, as: UTF8.self))) }
        for (what, text) in texts {
            if let piece = forbidden.first(where: { text.contains($0) }) {
                Issue.record("send --tenants: \(what) shows a tenant's write key ('\(piece)'): \(text.prefix(2000))")
            }
        }
    }
}
