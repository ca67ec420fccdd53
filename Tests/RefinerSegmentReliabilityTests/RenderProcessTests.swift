import Foundation
import Testing

/// `render` as the built executable: its reading stage runs on a thread of its own, and must not hold back what
/// it read while a live pipe is quiet.
struct RenderProcessTests {
    /// A bad line on a pipe that stays open is reported at once, not when a chunk of records is full or the input
    /// ends; the lines after it still render.
    @Test(.enabled(if: BuiltTool.url != nil, "the built refiner-segment executable was not found next to the tests"))
    func aBadLineOnALivePipeIsReportedBeforeTheInputEnds() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("refiner-segment-render-pipe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = Pipe()
        let process = try SendProcessInterruptionTests.launch(["render"], in: directory, input: input)
        let errors = directory.appendingPathComponent("stderr.txt")
        func reported() -> String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        input.fileHandleForWriting.write(Data(("not json\n" + SendInput.responses(2, tag: "pipe")).utf8))
        // The input is still open: the report can only come from the record already read.
        let cameEarly = await eventually { reported().contains("\n") }
        try input.fileHandleForWriting.close()
        guard await SendProcessInterruptionTests.finish(process) else { return }

        #expect(cameEarly, "the report waited for the end of the input")
        #expect(reported().hasPrefix("line 1: skipped: "))
        #expect(reported().hasSuffix("refiner-segment: 1 of 3 lines skipped\n"))
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 1)
    }
}
