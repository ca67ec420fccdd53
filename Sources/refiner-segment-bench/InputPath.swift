import Foundation
import RefinerSegment
@_spi(Benchmark) import RefinerSegmentCLI

/// The input path's corpus: `count` responses in their JSON form, one per line, as a backfill file holds them.
///
/// Each is the benchmark's response with its own id, one of 5,000 users and 800 accounts, an email, and answer
/// values that vary, so profiles grow across lines as they do in a real backfill.
func makeResponseLines(_ count: Int, from template: SurveyResponse) -> [[UInt8]] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    var lines: [[UInt8]] = []
    lines.reserveCapacity(count)
    var variant = template
    for index in 0..<count {
        variant.id = "resp_\(index)"
        variant.user = User(id: "user-\(index % 5_000)", email: "person\(index % 5_000)@example.com")
        variant.account = Account(id: "account-\(index % 800)")
        for position in variant.answers.indices {
            variant.answers[position].value =
                position == 1 ? .integer(Int64(index % 11)) : .string("answer \(index % 7) to q\(position)")
        }
        if let line = try? encoder.encode(variant) { lines.append(Array(line)) }
    }
    return lines
}

/// Runs `refiner-segment render FILE` in this process, through the tool's own input and output path, with
/// standard output going to `/dev/null`; returns the number of lines it reported skipped (0 when all rendered).
func renderFile(_ path: String) async -> Int {
    let null = FileHandle(forWritingAtPath: "/dev/null")
    let skipped = AtomicCounter()
    let standard = ToolIO.standard
    let io = ToolIO(
        openInput: standard.openInput,
        writeOutput: { null?.write(Data($0)) },
        writeError: { text in if text.contains("skipped") { skipped.add(1) } }
    )
    let status = await RefinerSegmentTool(io: io).run(["render", path])
    return status == RefinerSegmentTool.success ? skipped.value : max(skipped.value, 1)
}

/// ``renderFile(_:)`` without the asynchronous entry point: the same `render` command, called synchronously,
/// so that the instruction mode can count it (valgrind cannot follow the concurrency runtime's worker
/// threads, which `RefinerSegmentTool.run(_:)` runs on).
func renderFileSynchronously(_ path: String) -> Int {
    let null = FileHandle(forWritingAtPath: "/dev/null")
    let skipped = AtomicCounter()
    let standard = ToolIO.standard
    let io = ToolIO(
        openInput: standard.openInput,
        writeOutput: { null?.write(Data($0)) },
        writeError: { text in if text.contains("skipped") { skipped.add(1) } }
    )
    let status = RefinerSegmentTool(io: io).renderSynchronously(["render", path])
    return status == RefinerSegmentTool.success ? skipped.value : max(skipped.value, 1)
}

/// Writes `lines` as a JSON Lines file in the temporary directory and returns its path.
func writeJSONLines(_ lines: [[UInt8]], name: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
    var bytes: [UInt8] = []
    bytes.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
    for line in lines {
        bytes.append(contentsOf: line)
        bytes.append(UInt8(ascii: "\n"))
    }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}
