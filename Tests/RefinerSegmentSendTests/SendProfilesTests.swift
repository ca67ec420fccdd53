import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentTesting
import Testing

/// `send --profiles FILE`: the collected profiles live in a file, so a backfill sent in two runs delivers the
/// same messages as one run (and as `render`).
@Suite struct SendProfilesTests {
    /// Responses of four users of two accounts, each answering one of six user and three account questions.
    static func lines(_ range: Range<Int>) -> String {
        var text = ""
        for index in range {
            text +=
                #"{"id":"r\#(index)","completedAt":"2026-11-20T10:\#(10 + index % 40):00.000Z","#
                + #""survey":{"id":"s"},"user":{"id":"u\#(index % 4)"},"account":{"id":"a\#(index % 2)"},"#
                + #""answers":[{"question":{"id":"q\#(index % 6)","text":"Q\#(index % 6)?"},"value":\#(index)},"#
                + #"{"question":{"id":"g\#(index % 3)","text":"G\#(index % 3)?","attribution":"account"},"value":"v\#(index)"}]}"#
                + "\n"
        }
        return text
    }

    /// Every message the server received, re-encoded with sorted keys so that two runs compare as values.
    static func messages(_ server: LoopbackHTTPServer) throws -> [String] {
        var all: [String] = []
        for request in server.requests {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            let batch = try #require(body["batch"] as? [[String: Any]])
            for message in batch {
                let data = try JSONSerialization.data(withJSONObject: message, options: .sortedKeys)
                all.append(String(decoding: data, as: UTF8.self))
            }
        }
        return all
    }

    static func send(_ input: String, profiles: String?, to server: LoopbackHTTPServer) async -> (Int32, String) {
        let captured = Captured()
        var arguments = ["send", "--endpoint", server.baseURL.absoluteString]
        if let profiles { arguments += ["--profiles", profiles] }
        let status = await RefinerSegmentTool(
            io: captured.io(input: input, environment: ["SEGMENT_WRITE_KEY": "wk_profiles"])
        ).run(arguments + ["responses.jsonl"])
        return (status, captured.error)
    }

    @Test func aBackfillSentInTwoRunsDeliversWhatOneRunDelivers() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "send-profiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let whole = try LoopbackHTTPServer()
        defer { whole.stop() }
        let (status, error) = await Self.send(Self.lines(0..<60), profiles: nil, to: whole)
        #expect(status == 0, "\(error)")

        let split = try LoopbackHTTPServer()
        defer { split.stop() }
        let path = directory.appendingPathComponent("profiles").path
        let first = await Self.send(Self.lines(0..<25), profiles: path, to: split)
        let second = await Self.send(Self.lines(25..<60), profiles: path, to: split)
        #expect(first.0 == 0 && second.0 == 0, "\(first.1) \(second.1)")

        let expected = try Self.messages(whole)
        #expect(expected.count == 120)
        // Without the file, the second run would start from empty profiles and its calls would carry less.
        #expect(try Self.messages(split) == expected)
    }

    @Test func aProfilesFileThatIsNotAStoreSendsNothing() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-store-\(UUID().uuidString)")
            .path
        try Data("not a store at all, just text".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let (status, error) = await Self.send(Self.lines(0..<3), profiles: path, to: server)
        #expect(status == 1)
        #expect(error.contains("is not a profile store"), "\(error)")
        #expect(server.requests.isEmpty)
    }
}
