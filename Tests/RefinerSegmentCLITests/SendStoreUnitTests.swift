import Foundation
import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// The pieces of `send --store` that need no process: the input digest by line end, the cursor file, how a
/// failed claim is cut into units for the failed file, and `store status` usage.
struct SendStoreUnitTests {
    static let input = Array("{\"a\":1}\n\n{\"b\":22}\r\n{\"c\":333}\nlast".utf8)

    /// The digest of the first `count` input bytes, computed directly.
    static func digest(_ count: Int) -> InputDigest {
        var digest = InputDigest()
        digest.add(input.prefix(count))
        return digest
    }

    @Test(arguments: [1, 3, 7, 64])
    func theTrackerKnowsTheDigestAtEachLineEndOfTheLastTwoChunks(chunkSize: Int) throws {
        let tracker = InputTracker()
        var source = TrackedSource(base: MemorySource(Self.input, chunkSize: chunkSize), tracker: tracker)
        var seen = 0
        let lineEnds = Self.input.indices.filter { Self.input[$0] == UInt8(ascii: "\n") }.map { $0 + 1 }
        while true {
            let chunk = try source.read()
            if chunk.isEmpty { break }
            // What the reader may still hand out ends in this chunk or the one before.
            let previousStart = seen - chunkSize
            seen += chunk.count
            for end in lineEnds where end <= seen && end >= previousStart {
                #expect(tracker.digest(through: end) == Self.digest(end), "end \(end), chunks of \(chunkSize)")
            }
        }
        // The last line has no line break: it ends with the input.
        #expect(tracker.digest(through: Self.input.count) == Self.digest(Self.input.count))
        #expect(tracker.digest(through: 0) == InputDigest())
        #expect(tracker.digest(through: 3) == nil, "not a line end")
    }

    @Test func aCursorIsAMarkReadBackOrTakenAsNoneAndItsCopyIsWrittenWhole() throws {
        #expect(InputCursor.decode(mark: nil).cursor == nil)
        #expect(InputCursor.decode(mark: nil).problem == nil)
        #expect(InputCursor.decode(mark: []).problem == nil, "an empty mark: the job was done")
        let cursor = InputCursor(input: "in.jsonl", line: 12, byteOffset: 3456, digest: Self.digest(20).hex)
        #expect(InputCursor.decode(mark: cursor.encoded).cursor == cursor)
        // A mark this version cannot read is none, and says so.
        let (none, problem) = InputCursor.decode(mark: Array("{\"line\":".utf8))
        #expect(none == nil)
        #expect(problem?.contains("is not one this version can read") == true)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cursor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try cursor.write(in: directory.path)
        let copy = try Data(contentsOf: URL(fileURLWithPath: InputCursor.path(in: directory.path)))
        #expect(InputCursor.decode(mark: Array(copy.dropLast())).cursor == cursor)
        try InputCursor.remove(in: directory.path)
        #expect(!FileManager.default.fileExists(atPath: InputCursor.path(in: directory.path)))
    }

    static func message(_ index: Int) throws -> SegmentMessage {
        try SegmentMessage(json: Array(#"{"type":"identify","userId":"u\#(index)","messageId":"m\#(index)"}"#.utf8))
    }

    @Test(arguments: [
        (0..<5, [["m0", "m1"], ["m2"], ["m3", "m4"]]),
        (2..<5, [["m2"], ["m3", "m4"]]),
        (3..<5, [["m3", "m4"]]),
        (0..<2, [["m0", "m1"]]),
        (2..<3, [["m2"]]),
    ])
    func aFailedRangeOfAClaimIsCutIntoItsUnits(range: Range<Int>, expected: [[String]]) throws {
        let claim = SegmentClaim(
            id: 1, tenant: "default", messages: try (0..<5).map(Self.message), unitEnds: [2, 3, 5])
        #expect(SendStore.units(of: claim, in: range).map { $0.map(\.messageID) } == expected)
    }

    @Test func storeStatusOfAMissingDirectoryOrWithoutItsSubcommandSaysWhat() async {
        let missing = await ToolRun.run(["store", "status", "/nonexistent/refiner-store"], input: [])
        #expect(missing.status == 1)
        #expect(missing.error.contains("no store at /nonexistent/refiner-store"))
        let bare = await ToolRun.run(["store"], input: [])
        #expect(bare.status == 2)
        #expect(bare.error.contains("store status DIR"))
        let emptyStore = await ToolRun.run(["send", "--tenants", "t.json", "--store", ""], input: [])
        #expect(emptyStore.status == 2)
        #expect(emptyStore.error.contains("--store takes a directory"))
        let help = await ToolRun.run(["help"], input: [])
        #expect(help.output.contains("--store DIR"))
        #expect(help.output.contains("store status DIR"))
    }
}
