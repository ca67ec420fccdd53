import Foundation
import Testing

@testable import RefinerSegmentCLI

/// How `send --tenants --store` stores a window of interleaved tenants (``StoreWindow``): one append for
/// each tenant, and cursors that name exactly what is stored whatever moment a kill comes at.
struct StoreWindowTests {
    /// A unit of `tenant` whose record ends on `line`, each line 10 bytes long (its digest is a stand-in).
    static func unit(_ tenant: String, _ line: Int, through last: Int? = nil) -> StoreWindow.Unit {
        let end = last ?? line
        return StoreWindow.Unit(tenant: tenant, lines: line...end, endOffset: end * 10, endDigest: "d\(end)")
    }

    @Test func anInterleavedWindowIsOneAppendForEachTenantInTheOrderTheyFirstAppear() {
        let window = StoreWindow([
            Self.unit("globex", 1), Self.unit("acme", 2), Self.unit("globex", 3), Self.unit("down", 4),
            Self.unit("acme", 5),
        ])
        #expect(window.order == [0, 2, 1, 4, 3])
        #expect(window.appends == [0..<2, 2..<4, 4..<5])
        #expect(StoreWindow([]).appends.isEmpty)
        #expect(StoreWindow([Self.unit("acme", 1)]).appends == [0..<1])
    }

    @Test func eachCursorNamesTheDoneLinesAndTheLinesStoredPastThem() throws {
        // a b a b | a: after a's units, line 1 is done and line 3 stored past it; after b's, all of it.
        let window = StoreWindow([
            Self.unit("a", 1), Self.unit("b", 2), Self.unit("a", 3, through: 4), Self.unit("b", 5),
        ])
        let cursors = window.cursors(keepsCursor: true, inherited: nil, inputName: "in.jsonl")
        #expect(cursors.count == 4)
        let afterA1 = try #require(cursors[0])
        #expect(afterA1.line == 1 && afterA1.byteOffset == 10 && afterA1.digest == "d1" && afterA1.beyond == nil)
        let afterA2 = try #require(cursors[1])
        #expect(afterA2.line == 1)
        #expect(afterA2.beyond == InputCursor.Beyond(lines: [3...4], byteOffset: 40, digest: "d4"))
        #expect(afterA2.covers(1) && !afterA2.covers(2) && afterA2.covers(3) && afterA2.covers(4))
        #expect(!afterA2.covers(5))
        #expect(afterA2.summary == "line 1 of in.jsonl and 2 lines after it")
        let afterB1 = try #require(cursors[2])
        #expect(afterB1.line == 4 && afterB1.beyond == nil, "line 2 stored: lines 1 to 4 are done")
        let afterB2 = try #require(cursors[3])
        #expect(afterB2.line == 5 && afterB2.byteOffset == 50 && afterB2.beyond == nil)
    }

    @Test func aTenantStoredFirstLeavesTheLineAtItsLastContiguousUnit() throws {
        // b 8, a 9, b 10, a 11 (the window starts after line 7). Appends: b's (8, 10), then a's (9, 11).
        let window = StoreWindow([Self.unit("b", 8), Self.unit("a", 9), Self.unit("b", 10), Self.unit("a", 11)])
        let cursors = window.cursors(keepsCursor: true, inherited: nil, inputName: "in.jsonl")
        #expect(cursors[0]?.line == 8 && cursors[0]?.beyond == nil)
        #expect(cursors[1]?.line == 8)
        #expect(cursors[1]?.beyond == InputCursor.Beyond(lines: [10...10], byteOffset: 100, digest: "d10"))
        #expect(cursors[2]?.line == 10 && cursors[2]?.beyond == nil)
        #expect(cursors[3]?.line == 11 && cursors[3]?.beyond == nil)
    }

    @Test func theLinesAnEarlierRunStoredPastItsCursorAreNamedUntilTheCursorPassesThem() throws {
        // The run resumed stopped at line 2 with lines 4 and 6 stored past it; this window holds 3 and 5.
        let inherited = InputCursor.Beyond(lines: [4...4, 6...6], byteOffset: 60, digest: "d6")
        let window = StoreWindow([Self.unit("b", 3), Self.unit("c", 5)])
        let cursors = window.cursors(keepsCursor: true, inherited: inherited, inputName: "in.jsonl")
        let afterB = try #require(cursors[0])
        #expect(afterB.line == 3)
        #expect(afterB.beyond == InputCursor.Beyond(lines: [4...4, 6...6], byteOffset: 60, digest: "d6"))
        let afterC = try #require(cursors[1])
        #expect(afterC.line == 5)
        #expect(afterC.beyond == InputCursor.Beyond(lines: [6...6], byteOffset: 60, digest: "d6"))
        // c alone stored first: its line and the inherited ones, in order, the furthest end's digest.
        let other = StoreWindow([Self.unit("b", 3), Self.unit("c", 5), Self.unit("b", 7)])
        let mixed = try #require(other.cursors(keepsCursor: true, inherited: inherited, inputName: "in.jsonl")[1])
        #expect(mixed.line == 3)
        #expect(mixed.beyond == InputCursor.Beyond(lines: [4...4, 6...6, 7...7], byteOffset: 70, digest: "d7"))
        #expect(StoreWindow.remaining(inherited, after: 6) == nil)
        #expect(StoreWindow.remaining(inherited, after: 4)?.lines == [6...6])
    }

    @Test func anUnknownDigestOrAPipeGivesNoCursorNeverOneThatCoversTooMuch() throws {
        var unknown = Self.unit("a", 1)
        unknown.endDigest = nil
        let window = StoreWindow([unknown, Self.unit("b", 2), Self.unit("a", 3)])
        let cursors = window.cursors(keepsCursor: true, inherited: nil, inputName: "in.jsonl")
        #expect(cursors[0] == nil, "line 1's end has no digest")
        #expect(cursors[1] == nil)
        #expect(cursors[2]?.line == 3)
        #expect(window.cursors(keepsCursor: false, inherited: nil, inputName: "-").allSatisfy { $0 == nil })
    }

    @Test(arguments: ["in.jsonl", "a \"quoted\" \\ path/with/slashes", "tab\there\u{1}and é ✓", ""])
    func aCursorWrittenByHandReadsBackTheSame(input: String) throws {
        let plain = InputCursor(input: input, line: 12, byteOffset: 3456, digest: "00ff00ff00ff00ff")
        #expect(InputCursor.decode(mark: plain.encoded).cursor == plain)
        var wide = plain
        wide.beyond = InputCursor.Beyond(
            lines: [14...14, 16...19, 30...30], byteOffset: 9000, digest: "0123456789abcdef")
        #expect(InputCursor.decode(mark: wide.encoded).cursor == wide)
        #expect(try JSONSerialization.jsonObject(with: Data(wide.encoded)) is [String: Any])
        // What JSONEncoder writes reads back the same too (cursors of earlier versions).
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(InputCursor.decode(mark: Array(try encoder.encode(wide))).cursor == wide)
        #expect(InputCursor.decode(mark: Array(try encoder.encode(plain))).cursor == plain)
    }
}
