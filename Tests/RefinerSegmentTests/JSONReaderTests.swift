import Foundation
import Testing

@testable import RefinerSegment

/// The library's JSON reader: exact numbers, strings, the errors it words itself, and record shapes.
struct JSONReaderTests {
    private func response(value: String) -> [UInt8] {
        Array(
            #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {"id": "u"}, "answers": [{"question": {"id": "q", "text": "t"}, "value": \#(value)}]}"#
                .utf8)
    }

    @Test(arguments: [
        ("9007199254740993", AnswerValue.integer(9_007_199_254_740_993)),
        ("9007199254740993.0", .integer(9_007_199_254_740_993)),
        ("-9223372036854775808", .integer(.min)),
        ("9223372036854775807", .integer(.max)),
        ("9223372036854775808", .decimal(9_223_372_036_854_775_808)),
        ("10.0", .integer(10)), ("1e1", .integer(10)), ("1E2", .integer(100)), ("0.1e1", .integer(1)),
        ("100e-2", .integer(1)), ("-0", .integer(0)), ("1.5", .decimal(1.5)), ("-2.5e-3", .decimal(-0.0025)),
        ("1e21", .decimal(1e21)), ("0.1", .decimal(0.1)),
    ])
    func numbersAreExact(text: String, expected: AnswerValue) throws {
        let decoded = try SurveyResponse(json: response(value: text))
        #expect(decoded.answers.first?.value == expected)
    }

    @Test(arguments: [
        (#""\ud83d\ude00""#, "😀"), (#""\u00e9\u00C9""#, "éÉ"), (#""a\/b\\c\"d""#, #"a/b\c"d"#),
        (#""\b\f\n\r\t""#, "\u{8}\u{C}\n\r\t"), (#""\u0000""#, "\u{0}"), ("\"\u{2028}é😀\"", "\u{2028}é😀"),
    ])
    func stringsResolveEscapesAndSurrogatePairs(json: String, expected: String) throws {
        let decoded = try SurveyResponse(json: response(value: json))
        #expect(decoded.answers.first?.value == .string(expected))
    }

    @Test(
        arguments: [
            ([0xFF], "invalid UTF-8"), ([0xC3, 0x28], "invalid UTF-8"),
            ([0xED, 0xA0, 0x80], "invalid UTF-8"), ([0xC0, 0xAF], "invalid UTF-8"),
            ([0xF4, 0x90, 0x80, 0x80], "invalid UTF-8"),
            (Array(#"\ud800"#.utf8), "a \\u escape of a high surrogate is not followed by a low one"),
            (Array(#"\udc00"#.utf8), "a \\u escape of a low surrogate has no high surrogate before it"),
            (Array(#"\u12"#.utf8), "a \\u escape needs four hex digits"),
            (Array(#"\x"#.utf8), "'\\x' is not a JSON escape"),
            ([0x09], "a control character (U+0009) is not escaped in a string"),
        ] as [([UInt8], String)])
    func badStringsAreNotJSONAndSayWhere(inside: [UInt8], reason: String) {
        var json = response(value: "\"a")
        let offset = json.count - 3  // before the `}]}` that closes the answer
        json.insert(contentsOf: inside + Array("b\"".utf8), at: offset)
        let error = #expect(throws: RefinerSegmentError.self) { try SurveyResponse(json: json) }
        #expect(error?.code == .invalidInput)
        #expect(error?.detail == "not valid JSON (\(reason), at byte \(offset))", "\(error?.detail ?? "")")
    }

    @Test(arguments: [
        ("", "not valid JSON (the input is empty, at byte 0)"),
        ("{\"id\": ", "not valid JSON (the input ends where a value is due, at byte 7)"),
        (#"{"id": "r"} x"#, "not valid JSON (unexpected 'x' where the end of the input is due, at byte 12)"),
        (#"{"id": 01}"#, "not valid JSON (unexpected '1' where ',' or '}' is due, at byte 8)"),
        (#"{"id": tru}"#, "not valid JSON (unexpected 't' where a value is due, at byte 7)"),
        (#"{"a": [1,,]}"#, "not valid JSON (unexpected ',' where a value is due, at byte 9)"),
        (
            String(repeating: "[", count: 513),
            "not valid JSON (arrays and objects nest deeper than 512 levels, at byte 512)"
        ),
    ])
    func syntaxErrorsSayWhere(json: String, detail: String) {
        let error = #expect(throws: RefinerSegmentError.self) { try SurveyResponse(json: Array(json.utf8)) }
        #expect(error?.detail == detail)
    }

    @Test
    func aByteOrderMarkAndTrailingCommasAreAcceptedAsJSONDecoderAcceptsThem() throws {
        let json =
            [0xEF, 0xBB, 0xBF]
            + Array(
                #"{"id": "r", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s",}, "user": {}, "answers": [],}"#
                    .utf8)
        #expect(try SurveyResponse(json: json).survey.id == "s")
    }

    @Test
    func aRepeatedNameKeepsItsFirstValueAsJSONDecoderDoes() throws {
        let json =
            #"{"id": "first", "id": 5, "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {}}"#
        #expect(try SurveyResponse(json: Array(json.utf8)).id == "first")
    }

    @Test(arguments: [
        (#"{"type": "identify", "messageId": "m", "userId": "u"}"#, InputRecordShape.segmentMessage),
        (#"{"messageId": "m", "nested": {"type": 1}, "type": "track"}"#, .segmentMessage),
        (#"{"triggered_event": "Completed Survey"}"#, .refinerWebhook),
        (#"{"form": {"uuid": "f"}, "response": {"data": {"type": "x", "messageId": "y"}}}"#, .refinerWebhook),
        (#"{"id": "r", "survey": {"id": "s", "messageId": "m"}, "type": "x"}"#, .surveyResponse),
        (#"{"id": "r", "response": {}}"#, .surveyResponse),
        (#"{"type": "identify", "messageId": "m", "#, .surveyResponse),
        (#"{"text": "a \"type\": 1, \"messageId\": 2"}"#, .surveyResponse),
        ("[1, 2]", .surveyResponse), ("not json", .surveyResponse), ("", .surveyResponse),
        ("\u{FEFF}{\"triggered_event\": null}", .refinerWebhook),
    ])
    func recordsAreClassifiedByTheirTopLevelNames(json: String, shape: InputRecordShape) {
        #expect(InputRecordShape(classifying: Array(json.utf8)) == shape)
    }
}
