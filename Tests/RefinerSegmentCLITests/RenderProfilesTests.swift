import Foundation
import Testing

/// `render --profiles FILE`: the profiles live in a file, so a backfill split over runs prints what one run
/// prints.
struct RenderProfilesTests {
    static func lines(_ range: Range<Int>) -> [UInt8] {
        var text = ""
        for index in range {
            text +=
                #"{"id":"r\#(index)","completedAt":"2026-11-20T10:\#(10 + index % 40):00.000Z","#
                + #""survey":{"id":"s"},"user":{"id":"u\#(index % 4)"},"account":{"id":"a\#(index % 2)"},"#
                + #""answers":[{"question":{"id":"q\#(index % 6)","text":"Q\#(index % 6)?"},"value":\#(index)},"#
                + #"{"question":{"id":"g\#(index % 3)","text":"G\#(index % 3)?","attribution":"account"},"value":"v\#(index)"}]}"#
                + "\n"
        }
        return Array(text.utf8)
    }

    @Test func aBackfillSplitOverTwoRunsPrintsWhatOneRunPrints() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "render-profiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let one = await ToolRun.run(
            ["render", "--profiles", directory.appendingPathComponent("one").path, "-"], input: Self.lines(0..<60))
        #expect(one.status == 0, "\(one.error)")
        let split = directory.appendingPathComponent("split").path
        let first = await ToolRun.run(["render", "--profiles", split, "-"], input: Self.lines(0..<25))
        let second = await ToolRun.run(["render", "--profiles", split, "-"], input: Self.lines(25..<60))
        #expect(first.status == 0 && second.status == 0, "\(first.error) \(second.error)")
        #expect(first.output + second.output == one.output)
        // And the in-memory render of the whole input agrees.
        let memory = await ToolRun.run(["render", "-"], input: Self.lines(0..<60))
        #expect(memory.output == one.output)
    }

    @Test func aProfilesFileThatIsNotAStoreIsAClearError() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-store-\(UUID().uuidString)")
            .path
        try Data("not a store at all, just text".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = await ToolRun.run(["render", "--profiles", path, "-"], input: Self.lines(0..<1))
        #expect(run.status == 1)
        #expect(run.error.contains("is not a profile store"), "\(run.error)")
        #expect(run.output.isEmpty)
    }
}
