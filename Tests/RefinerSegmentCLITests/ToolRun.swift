import Foundation
import RefinerSegment
import RefinerSegmentCLI
import Testing

/// What one in-process run of the tool wrote, and the paths it opened: the harness of every CLI test.
struct ToolRun {
    var status: Int32
    var output: String
    var error: String
    var openedPaths: [String?]

    /// The lines of standard output.
    var outputLines: [String] {
        output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Runs `refiner-segment` with `arguments`, serving `input` (in chunks of `chunkSize` bytes) for any input path.
    static func run(_ arguments: [String], input: [UInt8], chunkSize: Int = 1 << 16) async -> ToolRun {
        let collector = ToolOutputCollector()
        let io = ToolIO(
            openInput: { path in
                collector.opened(path)
                return MemorySource(input, chunkSize: chunkSize)
            },
            writeOutput: { collector.write($0) },
            writeError: { collector.writeError($0) }
        )
        let status = await RefinerSegmentTool(io: io).run(arguments)
        return collector.finish(status: status)
    }
}

/// Collects what the tool writes, from whichever thread it writes on.
private final class ToolOutputCollector: Sendable {
    private let state = Locked((output: [UInt8](), error: "", paths: [String?]()))

    func write(_ bytes: [UInt8]) { state.withLock { $0.output.append(contentsOf: bytes) } }
    func writeError(_ text: String) { state.withLock { $0.error += text } }
    func opened(_ path: String?) { state.withLock { $0.paths.append(path) } }

    func finish(status: Int32) -> ToolRun {
        state.withLock {
            ToolRun(
                status: status, output: String(decoding: $0.output, as: UTF8.self), error: $0.error,
                openedPaths: $0.paths)
        }
    }
}

/// Inputs for the webhook tests of `render`.
enum WebhookCLIFixtures {
    /// The real "Completed Survey" payload, pretty-printed over many lines, from the test bundle.
    static func completedSurvey() throws -> [UInt8] {
        let url = try #require(
            Bundle.module.url(
                forResource: "refiner-webhook-completed-survey", withExtension: "json", subdirectory: "Fixtures")
        )
        return [UInt8](try Data(contentsOf: url))
    }

    /// The same payload on one line (its strings hold no line breaks, so dropping them keeps it valid JSON).
    static func completedSurveyOnOneLine() throws -> [UInt8] {
        try completedSurvey().filter { $0 != UInt8(ascii: "\n") }
    }

    /// The identify call the fixture renders to.
    static let fixtureIdentify =
        #"{"type":"identify","messageId":"refiner-7c508c60-4ea2-11ed-9302-57708fe11d26-identify","userId":"sdk@30","#
        + #""timestamp":"2022-10-18T05:05:45.000Z","traits":{"refiner_email":"sdk30@gmail.com","#
        + #""refiner_why_did_you_cancel_your_subscription":"Missing features"},"#
        + #""context":{"library":{"name":"\#(LibraryInfo.refinerSegment.name)","#
        + #""version":"\#(LibraryInfo.refinerSegment.version)"}}}"#

    /// A response in the library's JSON form, on one line.
    static let jsonFormLine =
        #"{"id": "resp_1", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "onboarding"}, "#
        + #""user": {"id": "your-user-id"}, "#
        + #""answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]}"#
}
