import Foundation
import RefinerSegment
import Testing

/// A built message keeps its `messageId` as bytes of its JSON; the public properties read and write as a
/// stored id did.
struct BuiltMessageIDTests {
    private static func built(responseID: String) throws -> [SegmentMessage] {
        let response = SurveyResponse(
            id: responseID, completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: "u1"), account: Account(id: "a1"),
            answers: [
                Answer(question: Question(id: "q1", text: "Role?", attribution: .user), value: "CEO"),
                Answer(question: Question(id: "q2", text: "Industry?", attribution: .account), value: "Retail"),
            ])
        return try SegmentCallBuilder().process(response, profile: CollectedProfile()).messages
    }

    /// The id in the JSON, read back by the message reader.
    private static func idInJSON(_ message: SegmentMessage) throws -> String {
        try SegmentMessage(json: message.json).messageID
    }

    @Test(arguments: [
        "resp_1", "a response id long enough not to be a small string", #"quote " and backslash \ "#,
        "line\u{2028}separator and \u{85} next line", "tab\tand newline\n", "ünïcödé ✓",
        String(repeating: "x", count: 95),
    ])
    func theIDIsTheOneInTheJSON(responseID: String) throws {
        let messages = try Self.built(responseID: responseID)
        #expect(messages.map(\.kind) == [.identify, .group])
        for message in messages {
            let expected =
                9 + responseID.utf8.count + message.kind.rawValue.utf8.count <= 100
                ? "refiner-\(responseID)-\(message.kind.rawValue)" : nil
            if let expected { #expect(message.messageID == expected) }
            #expect(message.messageID.hasPrefix("refiner-"))
            #expect(try Self.idInJSON(message) == message.messageID)
            // Equal to, and hashed as, the same message made from its parts.
            let parts = SegmentMessage(
                kind: message.kind, messageID: message.messageID, responseID: message.responseID, json: message.json)
            #expect(parts == message)
            #expect(parts.hashValue == message.hashValue)
        }
        #expect(messages[0] != messages[1])
    }

    @Test func changingTheJSONKeepsTheID() throws {
        var message = try #require(try Self.built(responseID: "resp_1").first)
        let id = message.messageID
        message.json = Array(#"{"type":"identify","messageId":"other","userId":"u"}"#.utf8)
        #expect(message.messageID == id)
        message.json.append(contentsOf: Array("  ".utf8))
        #expect(message.messageID == id)
    }

    @Test func settingTheIDLeavesTheJSON() throws {
        var message = try #require(try Self.built(responseID: "resp_1").first)
        let json = message.json
        message.messageID = "replaced"
        #expect(message.messageID == "replaced")
        #expect(message.json == json)
        #expect(try Self.idInJSON(message) == "refiner-resp_1-identify")
    }
}
