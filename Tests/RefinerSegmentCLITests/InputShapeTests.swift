import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// The one decision of what an input record is, shared by `render` and `send`.
@Suite struct InputShapeTests {
    @Test(arguments: [
        (#"{"type":"identify","messageId":"m","userId":"u"}"#, InputShape.message),
        (#"  {"messageId":"m", "x": {"type": 1}, "type":"group"}"#, .message),
        (#"[{"type":"identify","messageId":"m","userId":"u"}]"#, .unit),
        (#"{"triggered_event":"Completed Survey"}"#, .webhook),
        (#"{"form":{"uuid":"f"},"response":{"type":"x","messageId":"y"}}"#, .webhook),
        (#"{"id":"r","answers":[{"type":"x"}],"messageId":"in a value\"type\""}"#, .response),
        (#"{"id":"r"}"#, .response),
        ("not json", .response),
        ("", .response),
        (#"{"type": "identify", "messageId"#, .response),
    ])
    func recordsAreToldApartByTheirTopLevelFields(record: String, shape: InputShape) {
        #expect(InputShape(of: Array(record.utf8)) == shape)
    }

    @Test func aUnitIsWrittenAndReadBackAsOneRecord() throws {
        let messages = try [
            #"{"type":"identify","messageId":"refiner-r-identify","userId":"u"}"#,
            #"{"type":"group","messageId":"refiner-r-group","userId":"u","groupId":"g","traits":{"a":[1,{"b":"]"}]}}"#,
        ].map { try InputShape.message.messages(from: Array($0.utf8))[0] }
        let record = InputShape.record(of: messages)
        #expect(InputShape(of: record) == .unit)
        #expect(try InputShape.unit.messages(from: record) == messages)
        #expect(InputShape.record(of: [messages[0]]) == messages[0].json)
    }

    @Test(
        arguments: [
            ("refiner-resp_1-identify", "identify", "refiner-resp_1"),
            ("refiner-resp_1-group", "group", "refiner-resp_1"),
            ("refiner-resp_1-group-2", "group", "refiner-resp_1"),
            ("refiner-a-b-track", "track", "refiner-a-b"),
            ("custom-id", "identify", nil),
            ("refiner--identify", "identify", nil),
        ] as [(String, String, String?)])
    func loneMessagesOfOneResponseShareAKey(id: String, kind: String, key: String?) {
        let message = SegmentMessage(kind: SegmentMessage.Kind(rawValue: kind), messageID: id, json: [])
        #expect(SendSession.responseKey(of: message) == key)
    }
}
