// swift-tools-version:6.0
import PackageDescription

// Examples of RefinerSegment in a Swift server: the only package in this repository that depends on other
// packages. The library at `..` stays dependency-free; CI builds and tests this one after it.
let package = Package(
    name: "refiner-segment-examples",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "AsyncHTTPClientTransport", targets: ["AsyncHTTPClientTransport"]),
    ],
    dependencies: [
        // Named, because a path package is otherwise known by its folder's name, which differs between clones.
        .package(name: "refiner-segment", path: ".."),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // A SegmentTransport on AsyncHTTPClient: the code Docs/Transports.md shows.
        .target(
            name: "AsyncHTTPClientTransport",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The adapter against RefinerSegmentTesting's loopback server and compatibility test.
        .testTarget(
            name: "AsyncHTTPClientTransportTests",
            dependencies: [
                "AsyncHTTPClientTransport",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Upcoming features, as in the library's own Package.swift.
for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        // https://github.com/swiftlang/swift-evolution/blob/main/proposals/0444-member-import-visibility.md
        .enableUpcomingFeature("MemberImportVisibility"),
        // https://github.com/swiftlang/swift-evolution/blob/main/proposals/0335-existential-any.md
        .enableUpcomingFeature("ExistentialAny"),
    ])
    target.swiftSettings = settings
}
