import Testing

@testable import RefinerSegment

/// The writer copies strings eight bytes at a time, the last short word padded or overlapping the one
/// before: every length around the word size, with a byte that needs escaping at every position, must
/// give exactly what escaping one byte at a time gives.
struct JSONWriterWordTests {
    /// The reference: RFC 8259 escaping one scalar at a time, as the writer documents it.
    private func expected(_ text: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += Array("\\\"".utf8)
            case "\\": out += Array("\\\\".utf8)
            case "\n": out += Array("\\n".utf8)
            case "\r": out += Array("\\r".utf8)
            case "\t": out += Array("\\t".utf8)
            case "\u{08}": out += Array("\\b".utf8)
            case "\u{0C}": out += Array("\\f".utf8)
            case "\u{2028}": out += Array("\\u2028".utf8)
            case "\u{2029}": out += Array("\\u2029".utf8)
            case "\u{85}": out += Array("\\u0085".utf8)
            default:
                if scalar.value < 0x20 {
                    let hex = Array("0123456789abcdef".utf8)
                    out += Array("\\u00".utf8) + [hex[Int(scalar.value >> 4)], hex[Int(scalar.value & 0xF)]]
                } else {
                    out += Array(String(scalar).utf8)
                }
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    private func written(_ text: String) -> [UInt8] {
        var writer = JSONWriter(capacity: 16)
        writer.string(text)
        return writer.bytes
    }

    @Test(arguments: ["\"", "\\", "\n", "\u{01}", "\u{1F}", "\u{2028}", "\u{2029}", "\u{85}", "é", "€", "😀"])
    func everyLengthAndPositionMatchesEscapingByteByByte(special: String) {
        for length in 0...26 {
            let plain = String(repeating: "a", count: length)
            #expect(written(plain) == expected(plain), "length \(length)")
            for position in 0...length {
                var text = plain
                text.insert(contentsOf: special, at: text.index(text.startIndex, offsetBy: position))
                #expect(written(text) == expected(text), "length \(length), special at \(position)")
            }
        }
    }

    @Test
    func consecutiveStringsInOneBufferDoNotOverwriteEachOther() {
        // The fast path stores whole words past a short string's end; the next string must overwrite them.
        var writer = JSONWriter(capacity: 16)
        writer.beginArray()
        for length in 0...20 { writer.string(String(repeating: "x", count: length)) }
        writer.endArray()
        let expectedText =
            "[" + (0...20).map { "\"" + String(repeating: "x", count: $0) + "\"" }.joined(separator: ",") + "]"
        #expect(writer.bytes == Array(expectedText.utf8))
    }
}
