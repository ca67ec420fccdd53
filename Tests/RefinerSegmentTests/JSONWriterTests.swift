import Foundation
import Testing

@testable import RefinerSegment

struct JSONWriterTests {
    private func written(_ value: AnswerValue) -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("v")
        writer.value(value)
        writer.endObject()
        return writer.bytes
    }

    private func roundTrip(_ value: AnswerValue) throws -> Any? {
        try jsonObject(written(value))["v"]
    }

    @Test(arguments: Array(0x00...0x1F))
    func everyControlCharacterIsEscaped(code: Int) throws {
        let text = "a" + String(UnicodeScalar(UInt8(code))) + "b"
        let bytes = written(.string(text))
        #expect(!bytes.contains { $0 < 0x20 }, "raw control byte on the wire")
        #expect(try roundTrip(.string(text)) as? String == text)
    }

    @Test
    func namedEscapesAreShort() {
        #expect(
            String(decoding: written(.string("\"\\\n\r\t\u{8}\u{C}\u{1}")), as: UTF8.self)
                == #"{"v":"\"\\\n\r\t\b\f\u0001"}"#)
    }

    @Test
    func lineSeparatorsAreEscapedSoJSONLinesSurviveEveryLineSplitter() throws {
        let text = "a\u{2028}b\u{2029}c\u{85}d\u{2027}\u{202A}\u{84}é"
        let json = String(decoding: written(.string(text)), as: UTF8.self)
        #expect(json == #"{"v":"a\u2028b\u2029c\u0085d"# + "\u{2027}\u{202A}\u{84}é\"}")
        #expect(try roundTrip(.string(text)) as? String == text)
    }

    @Test
    func noWrittenStringHoldsARawLineSeparator() throws {
        var random = SeededRandom(seed: FuzzSettings.seed)
        for _ in 0..<FuzzSettings.iterations(2_000) {
            var text = RandomValue.string(using: &random)
            if random.chance(1, in: 2) { text += random.pick(["\u{2028}", "\u{2029}", "\u{85}"]) }
            let bytes = written(.string(text))
            let scalars = String(decoding: bytes, as: UTF8.self).unicodeScalars
            #expect(
                !scalars.contains { $0 == "\u{2028}" || $0 == "\u{2029}" || $0 == "\u{85}" }, "\(text.debugDescription)"
            )
            let readBack = try #require(try roundTrip(.string(text)) as? String)
            #expect(sameScalarsButBOM(readBack, text), "\(text.debugDescription)")
        }
    }

    @Test(arguments: ["𝄞 music", "😀👩‍👩‍👧", "\u{2028}\u{2029}", "日本語", "é\u{301}", "\u{10FFFF}", "</script>", "\u{7F}"])
    func unicodeRoundTrips(text: String) throws {
        #expect(try roundTrip(.string(text)) as? String == text)
    }

    @Test
    func keysAreEscapedToo() throws {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("we\"ird\nkey")
        writer.integer(1)
        writer.endObject()
        #expect(try jsonObject(writer.bytes)["we\"ird\nkey"] as? Int == 1)
    }

    @Test(arguments: [Int64.min, -1, 0, 7, 10, 1_000_000, Int64.max])
    func integersStayIntegers(value: Int64) throws {
        let text = String(decoding: written(.integer(value)), as: UTF8.self)
        #expect(text == "{\"v\":\(value)}")
        #expect(!text.contains("."))
    }

    @Test(arguments: [
        0.1, -2.5, 1e-5, 1e20, 123456.789, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude, -0.0, 3.0,
    ])
    func decimalsReadBackExactly(value: Double) throws {
        let number = try #require(try roundTrip(.decimal(value)) as? NSNumber)
        #expect(number.doubleValue == value)
    }

    @Test
    func booleansAndListsAndDates() throws {
        #expect(String(decoding: written(.boolean(true)), as: UTF8.self) == #"{"v":true}"#)
        #expect(String(decoding: written(.boolean(false)), as: UTF8.self) == #"{"v":false}"#)
        #expect(String(decoding: written(.strings(["a", "b\"c"])), as: UTF8.self) == #"{"v":["a","b\"c"]}"#)
        #expect(String(decoding: written(.strings([])), as: UTF8.self) == #"{"v":[]}"#)
        #expect(String(decoding: written(.date(seedDate)), as: UTF8.self) == #"{"v":"2026-11-20T10:15:00.000Z"}"#)
    }

    @Test
    func nestedStructureIsValidJSON() throws {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("a")
        writer.beginArray()
        writer.integer(1)
        writer.beginObject()
        writer.key("b")
        writer.string("c")
        writer.endObject()
        writer.endArray()
        writer.key("d")
        writer.boolean(false)
        writer.endObject()
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"a":[1,{"b":"c"}],"d":false}"#)
    }
}

struct TimestampTests {
    @Test(arguments: [
        ("2026-11-20T10:15:00.000Z", 1_795_169_700.0),
        ("2022-10-18T05:05:45.000000Z", 1_666_069_545.0),
        ("2020-09-02 21:53:33", 1_599_083_613.0),
        ("2026-11-20T11:15:00+01:00", 1_795_169_700.0),
        ("2026-11-20T05:15:00.000-0500", 1_795_169_700.0),
        ("1970-01-01T00:00:00Z", 0.0),
        ("1969-12-31T23:59:59.500Z", -0.5),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
    ])
    func parses(text: String, seconds: Double) throws {
        let date = try #require(Timestamp.date(from: text))
        #expect(date.timeIntervalSince1970 == seconds)
    }

    @Test(arguments: [
        "", "2026-11-20", "2026-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2026-11-20T10:15:00.Z",
        "2026-11-20T25:00:00Z", "2026-11-20T10:15:00Zjunk", "yesterday", "2026-11-20T10:15",
    ])
    func rejects(text: String) {
        #expect(Timestamp.date(from: text) == nil)
    }

    @Test(arguments: [
        (1_795_169_700.0, "2026-11-20T10:15:00.000Z"),
        (1_666_069_545.123456, "2022-10-18T05:05:45.123Z"),
        (1_666_069_545.1239, "2022-10-18T05:05:45.123Z"),
        (-0.5, "1969-12-31T23:59:59.500Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (253_402_300_799.999, "9999-12-31T23:59:59.999Z"),
        (-62_167_219_200, "0000-01-01T00:00:00.000Z"),
    ])
    func formatsWithMilliseconds(seconds: Double, text: String) {
        #expect(Timestamp.string(from: Date(timeIntervalSince1970: seconds)) == text)
    }

    @Test
    func microsecondsFromTheWireAreTruncatedNotRounded() throws {
        let date = try #require(Timestamp.date(from: "2022-10-18T05:05:45.999999Z"))
        #expect(Timestamp.string(from: date) == "2022-10-18T05:05:45.999Z")
    }
}

struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func knownVectors(message: String, digest: String) {
        #expect(SHA256.hexDigest(Array(message.utf8)) == digest)
    }

    @Test
    func millionAs() {
        #expect(
            SHA256.hexDigest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

struct ClockGoneWrongTests {
    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, -1e300])
    func batchWithAnUnrepresentableSentAtStillEncodes(seconds: Double) throws {
        let body = SegmentBatch.encode([], sentAt: Date(timeIntervalSince1970: seconds), writeKey: WriteKey("wk"))
        let sentAt = try #require(try jsonObject(body)["sentAt"] as? String)
        #expect(Timestamp.date(from: sentAt) != nil, "\(sentAt)")
    }
}

/// The scratch writer of a response's messages: the members they share kept at its start, copied into each
/// message, also once the writer has moved to a larger buffer.
struct JSONWriterSharedMembersTests {
    @Test func keptBytesAndCopiedMembersSurviveAMoveToALargerBuffer() {
        var writer = JSONWriter(capacity: 16)
        writer.rawKey("userId")
        writer.string("u")
        let shared = writer.byteCount
        var messages: [String] = []
        for round in 0..<2 {
            writer.removeAll(keepingFirst: shared)
            writer.beginObject()
            writer.rawKey("type")
            writer.string("identify")
            writer.members(copyingOwn: 0..<shared)
            // Past the first buffer in the second round.
            writer.key("long")
            writer.string(String(repeating: "a", count: round * 2000))
            writer.endObject()
            messages.append(String(decoding: writer.bytes(from: shared), as: UTF8.self))
        }
        #expect(messages[0] == #"{"type":"identify","userId":"u","long":""}"#)
        #expect(
            messages[1] == #"{"type":"identify","userId":"u","long":""# + String(repeating: "a", count: 2000) + #""}"#)
        #expect(writer.bytes(in: 0..<shared) == Array(#""userId":"u""#.utf8))
    }
}
