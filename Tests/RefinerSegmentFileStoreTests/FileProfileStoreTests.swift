import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import Testing

/// The file-backed profile store: kept across opens, locked, compacted, and whole after a crash.
@Suite(.serialized) struct FileProfileStoreTests {
    let directory: URL
    var path: String { directory.appendingPathComponent("profiles").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("file-profiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    static func response(_ index: Int, users: Int = 50, accounts: Int = 5, accountTraits: Int = 1_000_000)
        -> SurveyResponse
    {
        SurveyResponse(
            id: "r\(index)", completedAt: Date(timeIntervalSince1970: 1_795_600_000 + Double(index)),
            survey: Survey(id: "s"),
            user: User(id: "u\(index % users)", email: "u\(index % users)-\(index)@example.com"),
            account: Account(id: "a\(index % accounts)"),
            answers: [
                Answer(
                    question: Question(id: "q\(index)", text: "Q\(index)?", propertyName: "answer_\(index)"),
                    value: .integer(Int64(index))),
                Answer(
                    question: Question(
                        id: "g\(index)", text: "G\(index)?", propertyName: "account_\(index % accountTraits)",
                        attribution: .account), value: .string("v\(index)")),
                Answer(
                    question: Question(id: "latest", text: "Latest?", propertyName: "latest"),
                    value: .integer(Int64(index))),
            ])
    }

    @Test func profilesOutliveTheStoreAndMatchTheMemoryOne() throws {
        let builder = try SegmentCallBuilder()
        var memory = InMemoryProfileStore()
        var messages: [[SegmentMessage]] = []
        do {
            let store = try FileProfileStore(path: path)
            for index in 0..<400 {
                let response = Self.response(index)
                messages.append(
                    try builder.makeMessages(for: response, profile: store.apply(builder.changes(for: response))))
            }
            store.close()
        }
        for index in 0..<400 { #expect(try memory.process(Self.response(index), with: builder) == messages[index]) }
        // Reopened (a second run of a backfill): the same profiles, the same calls.
        let store = try FileProfileStore(path: path)
        #expect(store.truncatedBytes == 0)
        for user in 0..<50 { #expect(try store.user(.user("u\(user)")) == memory.users["u\(user)"]) }
        for account in 0..<5 { #expect(try store.account(id: "a\(account)") == memory.accounts["a\(account)"]) }
        #expect(store.recordCount == 55)
        let again = try builder.makeMessages(
            for: Self.response(7), profile: store.apply(builder.changes(for: Self.response(7))))
        #expect(again == (try memory.process(Self.response(7), with: builder)))
    }

    @Test func theIndexGrowsAndIsRebuiltWhenMissing() throws {
        let builder = try SegmentCallBuilder()
        do {
            let store = try FileProfileStore(path: path)
            for index in 0..<20_000 {
                _ = try store.apply(builder.changes(for: Self.response(index, users: 20_000, accountTraits: 10)))
            }
            #expect(store.recordCount == 20_005)
        }
        try FileManager.default.removeItem(atPath: path + ".index")
        let store = try FileProfileStore(path: path)
        #expect(store.recordCount == 20_005)
        for index in stride(from: 0, to: 20_000, by: 997) {
            #expect(try store.user(.user("u\(index)"))?.traits["refiner_answer_\(index)"] == .integer(Int64(index)))
        }
    }

    @Test func aSecondStoreOnTheSameFileIsRefused() throws {
        let first = try FileProfileStore(path: path)
        let error = #expect(throws: FileProfileStoreError.self) { try FileProfileStore(path: path) }
        #expect(error?.code == .locked)
        first.close()
        _ = try FileProfileStore(path: path)
    }

    @Test func aTornTailIsCutOffAndEverythingBeforeItStays() throws {
        let builder = try SegmentCallBuilder()
        do {
            let store = try FileProfileStore(path: path)
            for index in 0..<100 { _ = try store.apply(builder.changes(for: Self.response(index))) }
        }
        // Half a record at the end, as a process killed mid-write leaves it (the index has not seen it).
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data([0x52, 0x50, 0x52, 0x31, 0xFF, 0x00, 0x00, 0x00, 1, 2, 3]))
        handle.closeFile()
        let store = try FileProfileStore(path: path)
        #expect(store.truncatedBytes == 11)
        #expect(try store.user(.user("u49"))?.traits["refiner_latest"] == .integer(99))
        _ = try store.apply(builder.changes(for: Self.response(100)))
        #expect(try store.user(.user("u0"))?.traits["refiner_latest"] == .integer(100))
    }

    @Test func notAProfileStoreIsACorruptError() throws {
        try Data("hello, world, this is not a store".utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: FileProfileStoreError.self) { try FileProfileStore(path: path) }
        #expect(error?.code == .corrupt)
        #expect(error?.description.contains(path) == true)
    }

    @Test func compactionKeepsTheNewestProfilesAndShrinksTheLog() throws {
        let builder = try SegmentCallBuilder()
        let store = try FileProfileStore(path: path)
        for index in 0..<500 { _ = try store.apply(builder.changes(for: Self.response(index, users: 5, accounts: 1))) }
        let before = try store.user(.user("u3"))
        let sizeBefore = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        try store.compact()
        let sizeAfter = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(sizeAfter * 10 < sizeBefore, "\(sizeAfter) of \(sizeBefore) bytes")
        #expect(try store.user(.user("u3")) == before)
        store.close()
        let reopened = try FileProfileStore(path: path)
        #expect(try reopened.user(.user("u3")) == before)
        #expect(reopened.recordCount == 6)
    }
}
