/// The library's name and version as Segment sees them in `context.library` and the `User-Agent`.
public struct LibraryInfo: Sendable, Hashable {
    /// The library's name, `refiner-segment-swift`.
    public var name: String
    /// The library's version.
    public var version: String

    /// Creates library information; hosts rarely need to, the default names this library.
    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    /// This library: `refiner-segment-swift` at its current version.
    public static let refinerSegment = LibraryInfo(name: "refiner-segment-swift", version: "0.1.0")

    /// `refiner-segment-swift/0.1.0`, for a `User-Agent` header.
    public var userAgent: String { "\(name)/\(version)" }
}
