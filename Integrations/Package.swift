// swift-tools-version:6.0
import PackageDescription

// Adapters of RefinerSegment that need other packages. The library at `..` stays dependency-free; CI builds and
// tests this package after it. This manifest holds the PostgreSQL stores; the lead merges the other products in.
let package = Package(
    name: "refiner-segment-integrations",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "RefinerSegmentPostgres", targets: ["RefinerSegmentPostgres"])
    ],
    dependencies: [
        // Named, because a path package is otherwise known by its folder's name, which differs between clones.
        .package(name: "refiner-segment", path: ".."),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        // Already in the graph through postgres-nio; named because the stores import them themselves.
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
    ],
    targets: [
        // The outbox message store and the profile store on PostgreSQL, with their schema migrations.
        .target(
            name: "RefinerSegmentPostgres",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // One instance of a cluster, for the multi-process tests: drains the outbox into a Segment endpoint, or
        // merges profiles, and reports what it did as JSON Lines on stdout.
        .executableTarget(
            name: "refiner-segment-postgres-drill",
            dependencies: [
                "RefinerSegmentPostgres",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentURLSession", package: "refiner-segment"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Against a real server named by REFINER_SEGMENT_POSTGRES_URL (Scripts/with-postgres.sh starts one); every
        // test skips, saying why, when it is unset.
        .testTarget(
            name: "RefinerSegmentPostgresTests",
            dependencies: [
                "RefinerSegmentPostgres",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
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
