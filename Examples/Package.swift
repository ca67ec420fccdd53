// swift-tools-version:6.0
import PackageDescription

// Examples of RefinerSegment in a Swift server: the only package in this repository that depends on other
// packages. The library at `..` stays dependency-free; CI builds and tests this one after it.
let package = Package(
    name: "refiner-segment-examples",
    // Hummingbird 2 needs macOS 14 on Apple platforms; Linux is what CI builds.
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AsyncHTTPClientTransport", targets: ["AsyncHTTPClientTransport"]),
        .executable(name: "refiner-webhook-bridge", targets: ["refiner-webhook-bridge"]),
    ],
    dependencies: [
        // Named, because a path package is otherwise known by its folder's name, which differs between clones.
        .package(name: "refiner-segment", path: ".."),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // Already in the graph through Hummingbird; named because the bridge imports them itself.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
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
        // A Hummingbird 2 server that bridges Refiner's webhook to Segment: the code Docs/Webhooks.md shows.
        .executableTarget(
            name: "refiner-webhook-bridge",
            dependencies: [
                "AsyncHTTPClientTransport",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
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
