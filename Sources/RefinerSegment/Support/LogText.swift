/// Text for a log line: error descriptions quote input and server answers, whose line breaks and control
/// characters must not split one report into several lines (or forge one that looks like another).
package enum LogText {
    /// `text` with line breaks and other control characters (C0, DEL, C1, U+2028, U+2029) escaped; tabs stay.
    package static func singleLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0) }) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: result.append(contentsOf: #"\n"#.unicodeScalars)
            case 0x0D: result.append(contentsOf: #"\r"#.unicodeScalars)
            case _ where needsEscape(scalar):
                result.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09: return false
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: return true
        default: return false
        }
    }
}
