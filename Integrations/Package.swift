// swift-tools-version:6.0
import PackageDescription

// RefinerSegment's integrations: adapters to the packages a Swift server already runs (AsyncHTTPClient,
// swift-service-lifecycle, swift-log, swift-metrics) and two example servers built on them (Hummingbird and
// Vapor). The only package in this repository with dependencies; the library at `..` stays dependency-free.
//
// Every dependency is pinned to one exact version, the version CI builds and tests: a new release is taken
// on purpose, by changing the version here and running CI (README, "Updating the integrations'
// dependencies"). A package that depends on these products by URL sees the same pins.
//
// One block per product: its target, then its tests.
let package = Package(
    name: "refiner-segment-integrations",
    // Hummingbird 2 and Vapor's async API need macOS 14 on Apple platforms; Linux is what CI builds.
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "RefinerSegmentAsyncHTTPClient", targets: ["RefinerSegmentAsyncHTTPClient"]),
        .library(name: "RefinerSegmentServiceLifecycle", targets: ["RefinerSegmentServiceLifecycle"]),
        .library(name: "RefinerSegmentLogging", targets: ["RefinerSegmentLogging"]),
        .library(name: "RefinerSegmentMetrics", targets: ["RefinerSegmentMetrics"]),
        .library(name: "RefinerSegmentPostgres", targets: ["RefinerSegmentPostgres"]),
        .executable(name: "refiner-webhook-bridge", targets: ["refiner-webhook-bridge"]),
        .executable(name: "refiner-vapor-example", targets: ["refiner-vapor-example"]),
    ],
    dependencies: [
        // Named, because a path package is otherwise known by its folder's name, which differs between clones.
        .package(name: "refiner-segment", path: ".."),
        .package(url: "https://github.com/swift-server/async-http-client.git", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", exact: "1.8.0"),
        .package(url: "https://github.com/vapor/vapor.git", exact: "4.122.3"),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
    ],
    targets: [
        // MARK: RefinerSegmentAsyncHTTPClient: a SegmentTransport on AsyncHTTPClient that never follows redirects.
        .target(
            name: "RefinerSegmentAsyncHTTPClient",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RefinerSegmentAsyncHTTPClientTests",
            dependencies: [
                "RefinerSegmentAsyncHTTPClient",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),

        // MARK: RefinerSegmentServiceLifecycle: the pipeline as a swift-service-lifecycle `Service`.
        .target(
            name: "RefinerSegmentServiceLifecycle",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "RefinerSegmentServiceLifecycleTests",
            dependencies: [
                "RefinerSegmentServiceLifecycle",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: RefinerSegmentLogging: outcomes and lifecycle events through the host's swift-log `Logger`.
        .target(
            name: "RefinerSegmentLogging",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RefinerSegmentLoggingTests",
            dependencies: [
                "RefinerSegmentLogging",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),

        // MARK: RefinerSegmentMetrics: counters, gauges and a timer through swift-metrics.
        .target(
            name: "RefinerSegmentMetrics",
            dependencies: [
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "RefinerSegmentMetricsTests",
            dependencies: [
                "RefinerSegmentMetrics",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),

        // MARK: RefinerSegmentPostgres: the outbox message store and the profile store on PostgreSQL.
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
                "RefinerSegmentAsyncHTTPClient",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentURLSession", package: "refiner-segment"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The tests' child processes (the drills, the example servers): posix_spawn and a blocking waitid instead
        // of Foundation's Process, whose exit notification was seen to be lost (Docs/Testing.md).
        .target(
            name: "ChildProcessTesting",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Tests/ChildProcessTesting"
        ),
        // Against a real server named by REFINER_SEGMENT_POSTGRES_URL (Scripts/with-postgres.sh starts one); every
        // test skips, saying why, when it is unset.
        .testTarget(
            name: "RefinerSegmentPostgresTests",
            dependencies: [
                "RefinerSegmentPostgres",
                "ChildProcessTesting",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Examples. What both servers share: the webhook's rules, apart from any HTTP framework.
        .target(
            name: "RefinerWebhookIntake",
            dependencies: [
                "RefinerSegmentLogging",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentFileStore", package: "refiner-segment"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: refiner-webhook-bridge: a Hummingbird 2 server that bridges Refiner's webhook to Segment.
        .target(
            name: "RefinerWebhookBridge",
            dependencies: [
                "RefinerWebhookIntake",
                "RefinerSegmentAsyncHTTPClient",
                "RefinerSegmentServiceLifecycle",
                "RefinerSegmentLogging",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "refiner-webhook-bridge", dependencies: ["RefinerWebhookBridge"]),
        .testTarget(
            name: "RefinerWebhookBridgeTests",
            dependencies: [
                "RefinerWebhookBridge",
                "ChildProcessTesting",
                "RefinerWebhookIntake",
                "RefinerSegmentAsyncHTTPClient",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Fixtures")]
        ),

        // MARK: refiner-vapor-example: the same endpoint in a Vapor 4 application.
        .target(
            name: "RefinerVaporExample",
            dependencies: [
                "RefinerWebhookIntake",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "refiner-vapor-example",
            dependencies: [
                "RefinerVaporExample",
                "RefinerWebhookIntake",
                "RefinerSegmentAsyncHTTPClient",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "Vapor", package: "vapor"),
            ]
        ),
        .testTarget(
            name: "RefinerVaporExampleTests",
            dependencies: [
                "RefinerVaporExample",
                "RefinerWebhookIntake",
                "RefinerSegmentAsyncHTTPClient",
                .product(name: "RefinerSegment", package: "refiner-segment"),
                .product(name: "RefinerSegmentTesting", package: "refiner-segment"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "VaporTesting", package: "vapor"),
            ],
            resources: [.copy("Fixtures")]
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
