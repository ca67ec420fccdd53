/// The library's name and version as Segment sees them in `context.library` and the `User-Agent`.
///
/// Both become a product token of the `User-Agent` header (`name/version`), so a pipeline accepts only
/// 1 to ``maximumLength`` token characters in each (RFC 9110's `tchar`: letters, digits, a backtick and
/// `!#$%&'*+-.^_|~`);
/// anything else, a line break above all, would change the header or add one, and is refused when the
/// pipeline is made.
public struct LibraryInfo: Sendable, Hashable {
    /// The library's name, `refiner-segment-swift`.
    public var name: String
    /// The library's version.
    public var version: String

    /// The longest name or version a pipeline accepts: 128 characters.
    public static let maximumLength = 128

    /// Creates library information; hosts rarely need to, the default names this library.
    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    /// This library: `refiner-segment-swift` at its current version.
    public static let refinerSegment = LibraryInfo(name: "refiner-segment-swift", version: "0.1.0")

    /// `refiner-segment-swift/0.1.0`, for a `User-Agent` header.
    public var userAgent: String { "\(name)/\(version)" }

    /// Checks that the name and the version are header tokens. It is a programming error of the host, so
    /// it is reported when the pipeline is made, never found when a request goes out.
    func validate() throws(SegmentDeliveryError) {
        for (what, value) in [("name", name), ("version", version)] {
            let bytes = Array(value.utf8)
            guard !bytes.isEmpty, bytes.count <= Self.maximumLength, bytes.allSatisfy(Self.isTokenByte) else {
                throw SegmentDeliveryError(
                    code: .invalidConfiguration,
                    detail: "the library \(what) \"\(LogText.singleLine(String(value.prefix(Self.maximumLength))))\" "
                        + "is not 1 to \(Self.maximumLength) token characters (letters, digits, "
                        + "!#$%&'*+-.^_`|~), as a User-Agent needs"
                )
            }
        }
    }

    /// RFC 9110's `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
