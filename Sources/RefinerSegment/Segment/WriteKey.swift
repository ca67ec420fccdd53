#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Segment source's write key: the secret that lets a request write into a workspace.
///
/// It never shows itself: its description, debug description and reflection (`dump`, `Mirror`) are
/// redacted, so it cannot leak into a log line, an error or a report by way of string interpolation.
/// It is deliberately not `Codable`.
///
/// A pipeline accepts a key of 1 to ``maximumLength`` characters of printable ASCII without spaces
/// (Segment's keys are 32 letters and digits); anything else, such as a key read from a file with its line
/// break, is refused when the pipeline is made, with an error that does not show the key.
public struct WriteKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The key itself. Read it only to put it on the wire.
    public let rawValue: String

    /// The longest key a pipeline accepts: 256 characters.
    public static let maximumLength = 256

    /// Wraps a write key.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// `WriteKey(redacted)`.
    public var description: String { "WriteKey(redacted)" }
    /// `WriteKey(redacted)`.
    public var debugDescription: String { description }
    /// A mirror with no children, so `dump` shows nothing of the key.
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    /// The `Authorization` header value: HTTP Basic with the key as user name and an empty password,
    /// `Basic base64("<writeKey>:")`.
    public var basicAuthorization: String {
        "Basic " + Data((rawValue + ":").utf8).base64EncodedString()
    }

    /// Checks that the key can travel in a header and a JSON body as it is: 1 to ``maximumLength``
    /// characters of printable ASCII (`!` to `~`). The error says what is wrong, never what the key is.
    func validate() throws(SegmentDeliveryError) {
        func invalid(_ detail: String) -> SegmentDeliveryError {
            SegmentDeliveryError(code: .invalidConfiguration, detail: "the write key (not shown) " + detail)
        }
        let bytes = Array(rawValue.utf8)
        guard !bytes.isEmpty else {
            throw SegmentDeliveryError(code: .invalidConfiguration, detail: "the write key is empty")
        }
        guard bytes.count <= Self.maximumLength else {
            throw invalid("is \(bytes.count) bytes long; a write key has at most \(Self.maximumLength) characters")
        }
        if let last = bytes.last, last == 0x0A || last == 0x0D {
            throw invalid("ends with a line break; remove it (was it read from a file?)")
        }
        if let index = bytes.firstIndex(where: { !(0x21...0x7E).contains($0) }) {
            let what: String
            switch bytes[index] {
            case 0x20: what = "a space"
            case 0..<0x20, 0x7F: what = "a control character"
            default: what = "a character outside ASCII"
            }
            throw invalid(
                "holds \(what) at byte \(index + 1); a write key is printable ASCII without spaces")
        }
    }

    /// Every form in which the key can show up in what a server or a transport says back, longest first:
    /// the key itself, its Basic credentials (`base64("<key>:")`), both JSON-escaped (also with `\/`, as
    /// some servers write a slash) and the key percent-encoded (upper- and lower-case hex).
    ///
    /// Redacting all of them from a report means an echo of the request body or headers, in whatever
    /// encoding, does not carry the key into a log line.
    package var redactedForms: [String] {
        let basic = String(basicAuthorization.dropFirst("Basic ".count))
        var forms: Set<String> = []
        for secret in [rawValue, basic] where !secret.isEmpty {
            let escaped = Self.jsonEscaped(secret)
            forms.formUnion([secret, escaped, escaped.replacing("/", with: "\\/")])
        }
        for uppercase in [true, false] where !rawValue.isEmpty {
            forms.insert(Self.percentEncoded(rawValue, uppercase: uppercase))
        }
        return forms.sorted { $0.utf8.count != $1.utf8.count ? $0.utf8.count > $1.utf8.count : $0 < $1 }
    }

    /// `text` as it appears between the quotes of a JSON string the library writes.
    static func jsonEscaped(_ text: String) -> String {
        var writer = JSONWriter(capacity: text.utf8.count + 8)
        writer.string(text)
        return String(decoding: writer.bytes.dropFirst().dropLast(), as: UTF8.self)
    }

    /// `text` with every byte outside RFC 3986's unreserved set percent-encoded.
    static func percentEncoded(_ text: String, uppercase: Bool) -> String {
        let hex = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var result: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.append(byte)
            default:
                result += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
