import Foundation
import RefinerSegmentCLI
import Synchronization

/// Runs the tool in-process on bytes and collects what it writes.
final class ToolHarness: Sendable {
    private let output = Mutex<[UInt8]>([])
    private let errors = Mutex<String>("")

    /// Everything written to standard output.
    var stdout: String { output.withLock { String(decoding: $0, as: UTF8.self) } }
    /// Standard output split into lines, without the empty one after the last line break.
    var stdoutLines: [String] {
        stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }
    /// Everything written to standard error.
    var stderr: String { errors.withLock { $0 } }

    /// Runs one command line with `input` as standard input (and as every file it opens).
    static func run(
        _ arguments: [String],
        input: String = "",
        inputBytes: [UInt8]? = nil,
        chunkSize: Int = 1 << 16
    ) async -> (status: Int32, harness: ToolHarness) {
        let harness = ToolHarness()
        let bytes = inputBytes ?? Array(input.utf8)
        let io = ToolIO(
            openInput: { _ in MemorySource(bytes, chunkSize: chunkSize) },
            writeOutput: { written in harness.output.withLock { $0.append(contentsOf: written) } },
            writeError: { text in harness.errors.withLock { $0 += text } }
        )
        let status = await RefinerSegmentTool(io: io).run(arguments)
        return (status, harness)
    }
}

/// Parses one line of output as a JSON object.
func jsonLine(_ line: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
}
