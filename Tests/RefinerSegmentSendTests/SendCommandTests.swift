import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentTesting
import Testing

/// What the tool wrote: stdout, stderr and files.
final class Captured: Sendable {
    private let state = Locked((output: [UInt8](), error: ""))
    private let failedFiles = MemoryFailedFiles()

    var output: [UInt8] { state.withLock { $0.output } }
    var error: String { state.withLock { $0.error } }
    var files: [String: [UInt8]] { failedFiles.contents }

    func io(input: String, environment: [String: String], terminal: Bool = false) -> ToolIO {
        let bytes = Array(input.utf8)
        return ToolIO(
            openInput: { _ in MemorySource(bytes, chunkSize: 7) },
            writeOutput: { bytes in self.state.withLock { $0.output += bytes } },
            writeError: { text in self.state.withLock { $0.error += text } },
            environment: environment,
            errorIsTerminal: terminal,
            openFailedFile: failedFiles.open
        )
    }
}

@Suite struct SendCommandTests {
    static func response(_ id: String, user: String, account: String? = "acct-1") -> String {
        let accountJSON = account.map { #", "account": {"id": "\#($0)"}"# } ?? ""
        return #"{"id": "\#(id)", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "onboarding"}, "#
            + #""user": {"id": "\#(user)", "email": "\#(user)@example.com"}\#(accountJSON), "#
            + #""answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]}"#
    }

    static let builtMessage =
        #"{"type":"track","messageId":"refiner-resp_x-track","userId":"u9","event":"Completed Survey","#
        + #""timestamp":"2026-11-20T10:15:00.000Z","properties":{"survey_id":"s"}}"#

    static let input =
        [
            response("resp_1", user: "u1"), response("resp_2", user: "u2"), "",
            response("resp_3", user: "u3", account: nil), builtMessage,
        ].joined(separator: "\n") + "\n"

    static let expectedIDs = [
        "refiner-resp_1-identify", "refiner-resp_1-group", "refiner-resp_2-identify", "refiner-resp_2-group",
        "refiner-resp_3-identify", "refiner-resp_x-track",
    ]

    /// The messageIds of one line of a failed file: a message, or a unit as a JSON array of messages.
    static func unitIDs(_ line: String) throws -> [String] {
        let value = try JSONSerialization.jsonObject(with: Data(line.utf8))
        let objects = (value as? [[String: Any]]) ?? [value as? [String: Any] ?? [:]]
        return objects.compactMap { $0["messageId"] as? String }
    }

    private func messageIDs(_ requests: [LoopbackHTTPServer.Request]) throws -> [String] {
        try requests.flatMap { request in
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            return (body["batch"] as? [[String: Any]] ?? []).compactMap { $0["messageId"] as? String }
        }
    }

    @Test func deliversEveryMessageExactlyOnceWhenTheServerAnswers200() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: Self.input, environment: ["SEGMENT_WRITE_KEY": "wk"])
        )
        .run(["send", "--endpoint", server.baseURL.absoluteString, "responses.jsonl"])
        #expect(status == 0, "\(captured.error)")
        #expect(try messageIDs(server.requests) == Self.expectedIDs)
        #expect(server.requests.allSatisfy { $0.headerField("Authorization") == WriteKey("wk").basicAuthorization })
        #expect(captured.files.isEmpty)
        #expect(captured.output.isEmpty)
        #expect(captured.error.contains("6 messages: 6 delivered, 0 failed"))
        #expect(!captured.error.contains("\r"))
        // The already-built message went through byte for byte.
        let body = String(decoding: try #require(server.requests.last).body, as: UTF8.self)
        #expect(body.contains(Self.builtMessage))
    }

    @Test func writesTheFailedMessagesWhenTheServerAnswers400() async throws {
        let server = try LoopbackHTTPServer { _ in
            .respond(SegmentResponse(statusCode: 400, body: Array(#"{"error":"invalid"}"#.utf8)))
        }
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: Self.input, environment: ["SEGMENT_WRITE_KEY": "wk"])
        )
        .run(["send", "--endpoint", server.baseURL.absoluteString, "--failed", "out/failed.jsonl"])
        #expect(status == 1)
        // A refused batch is split in halves between pairs, each half sent once more: never retried.
        #expect(Set(try messageIDs(server.requests)) == Set(Self.expectedIDs))
        #expect(server.requests.allSatisfy { $0.headerField("X-Retry-Count") == "0" })
        let failed = try #require(captured.files["out/failed.jsonl"])
        let lines = String(decoding: failed, as: UTF8.self).split(separator: "\n").map(String.init)
        // A unit per line: each response's identify and group together, as a JSON array.
        #expect(lines.count == 4)
        #expect(
            try lines.map(Self.unitIDs) == [
                Array(Self.expectedIDs[0...1]), Array(Self.expectedIDs[2...3]), [Self.expectedIDs[4]],
                [Self.expectedIDs[5]],
            ])
        #expect(lines.last == Self.builtMessage)
        #expect(captured.error.contains("HTTP 400"))
        #expect(captured.error.contains("6 undelivered messages written to out/failed.jsonl"))
        #expect(!captured.error.contains(WriteKey("wk").basicAuthorization))
    }

    @Test func theFailedFileCanBeSentAgainUnchanged() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let failedFile = [Self.builtMessage, Self.builtMessage.replacingOccurrences(of: "resp_x", with: "resp_y")]
            .joined(separator: "\n")
        let status = await RefinerSegmentTool(
            io: captured.io(input: failedFile, environment: ["SEGMENT_WRITE_KEY": "wk"])
        )
        .run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 0, "\(captured.error)")
        #expect(try messageIDs(server.requests) == ["refiner-resp_x-track", "refiner-resp_y-track"])
    }

    @Test func aBuiltIdentifyAndItsGroupTravelTogether() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var store = InMemoryProfileStore()
        let pair = try store.process(
            try SurveyResponse(json: Array(Self.response("resp_1", user: "u1").utf8)), with: SegmentCallBuilder())
        let rendered = pair.map { String(decoding: $0.json, as: UTF8.self) }.joined(separator: "\n")
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: rendered, environment: ["SEGMENT_WRITE_KEY": "wk"])
        )
        .run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 0, "\(captured.error)")
        #expect(server.requests.count == 1)
        #expect(try messageIDs(server.requests) == ["refiner-resp_1-identify", "refiner-resp_1-group"])
    }

    /// A failed file keeps a unit on one line (a JSON array); sending it again sends each unit in one batch,
    /// and the old form (one message a line) still pairs an identify with the group after it.
    @Test func unitLinesOfAFailedFileAreSentAsUnits() async throws {
        var store = InMemoryProfileStore()
        var lines: [String] = []
        for id in ["resp_1", "resp_2"] {
            let pair = try store.process(
                try SurveyResponse(json: Array(Self.response(id, user: "u-\(id)").utf8)), with: SegmentCallBuilder())
            lines.append("[" + pair.map { String(decoding: $0.json, as: UTF8.self) }.joined(separator: ",") + "]")
        }
        lines.append(Self.builtMessage)
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: lines.joined(separator: "\n"), environment: ["SEGMENT_WRITE_KEY": "wk"])
        ).run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 0, "\(captured.error)")
        #expect(
            try messageIDs(server.requests) == [
                "refiner-resp_1-identify", "refiner-resp_1-group", "refiner-resp_2-identify", "refiner-resp_2-group",
                "refiner-resp_x-track",
            ])
    }

    @Test(arguments: ["[]", "[1]", #"[{"type":"identify"}]"#, "[{}, ]"])
    func aBadUnitLineIsReportedAndSkipped(line: String) async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: line + "\n" + Self.builtMessage, environment: ["SEGMENT_WRITE_KEY": "wk"])
        ).run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 1)
        #expect(captured.error.contains("line 1: skipped: invalid message"), "\(captured.error)")
        #expect(try messageIDs(server.requests) == ["refiner-resp_x-track"])
    }

    /// `--max-retry-duration`: a batch retried past it fails for good (the default is 12 hours).
    @Test func maxRetryDurationBoundsTheRetries() async throws {
        let server = try LoopbackHTTPServer { _ in .status(503) }
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: Self.input, environment: ["SEGMENT_WRITE_KEY": "wk"])
        ).run(["send", "--endpoint", server.baseURL.absoluteString, "--max-retry-duration", "0.2", "--failed", "f"])
        #expect(status == 1, "\(captured.error)")
        let lines = String(decoding: try #require(captured.files["f"]), as: UTF8.self).split(separator: "\n")
        #expect(try lines.flatMap { try Self.unitIDs(String($0)) } == Self.expectedIDs)
        // (The default, 12 hours, would keep this run retrying the 503s for good.)
    }

    @Test func refinerWebhooksAreSentAndOtherEventsIgnored() async throws {
        let webhook = """
            {
              "uuid": "c-1", "remote_id": "u7", "email": "u7@example.com",
              "account": {"remote_id": "acct-7", "attributes": {"plan": "pro"}},
              "triggered_event": "Completed Survey",
              "form": {"uuid": "f-1", "name": "Churn"},
              "response": {"uuid": "r-7", "completed_at": "2022-10-18T05:05:45.000000Z",
                           "data": {"why_did_you_cancel": "Missing features"}}
            }
            """
        let other = #"{"uuid": "c-2", "triggered_event": "Dismissed Survey", "form": {"uuid": "f-1"}, "response": {}}"#
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let input = [Self.response("resp_1", user: "u1"), webhook, other].joined(separator: "\n")
        let status = await RefinerSegmentTool(io: captured.io(input: input, environment: ["SEGMENT_WRITE_KEY": "wk"]))
            .run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 0, "\(captured.error)")
        #expect(
            try messageIDs(server.requests) == [
                "refiner-resp_1-identify", "refiner-resp_1-group", "refiner-r-7-identify", "refiner-r-7-group",
            ])
        #expect(captured.error.contains("line 10: ignored: unhandled event"), "the pretty-printed payload is lines 2-9")
        #expect(captured.error.contains("1 webhooks of other events ignored"))
    }

    @Test func aBadLineIsReportedAndTheOthersAreSent() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let input = [
            Self.response("resp_1", user: "u1"), "{not json", #"{"type":"identify","messageId":"m1"}"#,
            Self.response("resp_2", user: "u2"),
        ].joined(separator: "\n")
        let status = await RefinerSegmentTool(io: captured.io(input: input, environment: ["SEGMENT_WRITE_KEY": "wk"]))
            .run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 1)
        #expect(captured.error.contains("line 2: skipped"))
        #expect(captured.error.contains("line 3: skipped: invalid message"))
        #expect(
            try messageIDs(server.requests) == [
                "refiner-resp_1-identify", "refiner-resp_1-group", "refiner-resp_2-identify", "refiner-resp_2-group",
            ])
        #expect(captured.files.isEmpty)
    }

    @Test(arguments: [
        ([] as [String], [:] as [String: String]),
        (["--region", "ap"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--region", "eu", "--endpoint", "https://a.example.com"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--endpoint", "http://collector.example.com"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--endpoint", "not a url"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--write-key", "wk"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["a.jsonl", "b.jsonl"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--max-retry-duration", "soon"], ["SEGMENT_WRITE_KEY": "wk"]),
        (["--max-retry-duration", "-1"], ["SEGMENT_WRITE_KEY": "wk"]),
    ])
    func usageErrorsSendNothing(arguments: [String], environment: [String: String]) async {
        let captured = Captured()
        let status = await RefinerSegmentTool(io: captured.io(input: Self.input, environment: environment))
            .run(["send"] + arguments)
        #expect(status == 2)
        #expect(!captured.error.contains(" messages: "))
    }

    @Test func missingWriteKeyIsNamed() async {
        let captured = Captured()
        let status = await RefinerSegmentTool(io: captured.io(input: "", environment: [:])).run(["send"])
        #expect(status == 2)
        #expect(captured.error.contains("SEGMENT_WRITE_KEY"))
    }

    @Test func progressIsABarOnATerminal() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let captured = Captured()
        let status = await RefinerSegmentTool(
            io: captured.io(input: Self.input, environment: ["SEGMENT_WRITE_KEY": "wk"], terminal: true)
        ).run(["send", "--endpoint", server.baseURL.absoluteString])
        #expect(status == 0)
        // The input's size is known: the bar fills by the share read and delivered, with the rate.
        #expect(captured.error.contains("\r\u{1B}[2K[########################] 100% read, 100% delivered, "))
        #expect(captured.error.contains(" msg/s accepted 6, delivered 6, retried 0, failed 0"))
    }
}
