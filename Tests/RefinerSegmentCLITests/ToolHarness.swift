import Foundation
import RefinerSegmentCLI

/// Runs the tool in-process on text or bytes: a shorthand over ``ToolRun/run(_:input:chunkSize:)``.
enum ToolHarness {
    static func run(
        _ arguments: [String],
        input: String = "",
        inputBytes: [UInt8]? = nil,
        chunkSize: Int = 1 << 16
    ) async -> (status: Int32, harness: ToolRun) {
        let run = await ToolRun.run(arguments, input: inputBytes ?? Array(input.utf8), chunkSize: chunkSize)
        return (run.status, run)
    }
}

extension ToolRun {
    /// Everything written to standard output.
    var stdout: String { output }
    /// Standard output split into lines.
    var stdoutLines: [String] { outputLines }
    /// Everything written to standard error.
    var stderr: String { error }
}

/// Parses one line of output as a JSON object.
func jsonLine(_ line: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
}
