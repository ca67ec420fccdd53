import Foundation
import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// `render` reads a record with `InputShape.response(inRecord:)`, one parse for the common case; it must give
/// what telling the shape first and decoding by it gives: the same response, or an error with the same words.
@Suite struct InputShapeFastPathTests {
    private func byShape(_ record: [UInt8]) -> Result<SurveyResponse, RefinerSegmentError> {
        Result { () throws(RefinerSegmentError) in try InputShape(of: record).response(from: record) }
    }

    private func fast(_ record: [UInt8]) -> Result<SurveyResponse, RefinerSegmentError> {
        Result { () throws(RefinerSegmentError) in try InputShape.response(inRecord: record) }
    }

    private func expectSame(_ record: [UInt8], _ comment: Comment? = nil) {
        switch (fast(record), byShape(record)) {
        case (.success(let a), .success(let b)): #expect(a == b, comment)
        case (.failure(let a), .failure(let b)):
            #expect(a.code == b.code, comment)
            #expect(a.detail == b.detail, comment)
        case (let a, let b): Issue.record("fast path \(a), by shape \(b): \(comment?.rawValue ?? "")")
        }
    }

    static let records: [String] = [
        WebhookCLIFixtures.jsonFormLine,
        #"{"type":"identify","messageId":"m","userId":"u"}"#,
        #"[{"type":"identify","messageId":"m","userId":"u"}]"#,
        #"{"triggered_event":"Other event"}"#,
        #"{"id":"r","answers":[],"messageId":"m","type":"identify"}"#,
        #"{"id":"r"}"#,
        "not json",
        "",
        "{",
        #"{"type": "identify", "messageId"#,
    ]

    @Test(arguments: records)
    func everyShapeReadsAsTheShapePathReadsIt(record: String) {
        expectSame(Array(record.utf8))
    }

    @Test func theWebhookFixtureReadsTheSame() throws {
        expectSame(try WebhookCLIFixtures.completedSurveyOnOneLine())
        expectSame(try WebhookCLIFixtures.completedSurvey())
    }

    @Test func aMessageIdInsideAValueStillTakesTheFastPathAndReadsTheSame() {
        let line = WebhookCLIFixtures.jsonFormLine.replacingOccurrences(
            of: #""id":"#, with: #""note":"\"messageId\"","id":"#)
        expectSame(Array(line.utf8))
    }

    @Test func mutatedRecordsReadTheSame() throws {
        // Seeded: every record above and the fixtures with one byte replaced, dropped or doubled.
        var state: UInt64 = 0x5EED_0016
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let bases =
            Self.records.map { Array($0.utf8) }.filter { !$0.isEmpty }
            + [try WebhookCLIFixtures.completedSurveyOnOneLine()]
        let alphabet = Array(#"{}[]",:\ 0aeImI"#.utf8)
        for _ in 0..<400 {
            var record = bases[Int(next() % UInt64(bases.count))]
            let position = Int(next() % UInt64(record.count))
            switch next() % 3 {
            case 0: record[position] = alphabet[Int(next() % UInt64(alphabet.count))]
            case 1: record.remove(at: position)
            default: record.insert(record[position], at: position)
            }
            expectSame(record, "\(String(decoding: record, as: UTF8.self))")
        }
    }
}
