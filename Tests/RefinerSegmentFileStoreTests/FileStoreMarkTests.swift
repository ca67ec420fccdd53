import Foundation
import RefinerSegment
import Testing

@testable import RefinerSegmentFileStore

/// Marks (`send --store`'s input cursor): written with the units they cover, read back on open, kept when
/// their segment goes, and what came after the last one dropped on request.
@Suite struct FileStoreMarkTests {
    private func directory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("file-store-mark-\(UUID().uuidString)")
    }

    private func unit(_ id: String) throws -> [SegmentMessage] {
        [try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u"}"#.utf8))]
    }

    @Test func theMarkOfTheLastUnitAcceptedIsReadBackOnOpen() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(store.markAtOpen == nil)
            let accepted = try await store.append(
                [try unit("a"), try unit("b")], tenant: "default", marks: [Array("1".utf8), Array("2".utf8)])
            #expect(accepted == 2)
            #expect(await store.currentMark == Array("2".utf8))
        }
        let store = try FileMessageStore(directory: path)
        #expect(store.markAtOpen == Array("2".utf8))
        #expect(try await store.recover(tenant: "default").messages == 2, "a mark is not a unit")
    }

    @Test func theMarkOutlivesItsSegmentWhenEverythingIsDelivered() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path, configuration: .init(segmentBytes: 200))
            _ = try await store.append(
                (0..<5).map { try unit("m\($0)") }, tenant: "default",
                marks: (0..<5).map {
                    Array("line \($0)".utf8)
                })
            while let claim = try await store.claim(
                tenant: "default", maximumMessages: 2, maximumBytes: 1 << 20, lease: .zero)
            {
                try await store.settle(claim, messages: 0..<claim.messages.count, as: .delivered)
            }
        }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(store.markAtOpen == Array("line 4".utf8))
            #expect(try await store.recover(tenant: "default").messages == 0)
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasPrefix("segment-") }
                    .isEmpty)
            try await store.setMark([])
        }
        #expect(try FileMessageStore(directory: path).markAtOpen == [], "set, not appended: the later mark wins")
    }

    /// Units with no mark after them are those of an append cut short (no caller was told they were stored):
    /// a caller that reads its input again from the mark has them dropped.
    @Test func unitsAfterTheLastMarkAreDroppedOnRequest() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([try unit("kept")], tenant: "default", marks: [Array("1".utf8)])
            _ = try await store.append([try unit("cut-1"), try unit("cut-2")], tenant: "default")
        }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(store.markAtOpen == Array("1".utf8))
            #expect(try await store.discardUnitsAfterMark() == 2)
            let claim = try #require(
                try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
            #expect(claim.messages.map(\.messageID) == ["kept"])
        }
        let reopened = try FileMessageStore(directory: path)
        #expect(try await reopened.recover(tenant: "default").messages == 1, "dropped for good")
    }
}
