// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "refiner-segment",
    platforms: [.macOS(.v13), .iOS(.v16), .tvOS(.v16), .watchOS(.v9)],
    products: [
        .library(name: "RefinerSegment", targets: ["RefinerSegment"]),
        .library(name: "RefinerSegmentURLSession", targets: ["RefinerSegmentURLSession"]),
        .library(name: "RefinerSegmentTesting", targets: ["RefinerSegmentTesting"]),
        .library(name: "RefinerSegmentFileStore", targets: ["RefinerSegmentFileStore"]),
        .executable(name: "refiner-segment", targets: ["refiner-segment"]),
    ],
    targets: [
        // The core: model, trait keys, Segment call builder, JSON writer. No I/O.
        .target(name: "RefinerSegment"),
        // A SegmentTransport on URLSession (FoundationNetworking on Linux), kept out of the core so that hosts
        // with their own HTTP client never link it.
        .target(name: "RefinerSegmentURLSession", dependencies: ["RefinerSegment"]),
        // Test doubles for hosts and for this package: recording and scripted transports, a virtual clock, a
        // loopback HTTP server and a compatibility test for a host's own transport.
        .target(name: "RefinerSegmentTesting", dependencies: ["RefinerSegment"]),
        // Stores that keep state in files, on Foundation and POSIX alone: the file-backed profile store, and
        // the durable message store (checksummed segment files, an acknowledgement log, a directory lock).
        .target(name: "RefinerSegmentFileStore", dependencies: ["RefinerSegment", "CRefinerSegmentCRC32C"]),
        // CRC-32C with the processor's instruction (SSE 4.2, ARMv8 CRC), for the file store's checksums: C,
        // because Swift cannot call the instruction; the file store falls back to its own table where absent.
        .target(name: "CRefinerSegmentCRC32C"),
        // The command-line tool's logic, on the core's public API only; a module of its own so tests can drive it
        // in-process with byte buffers instead of spawning the executable.
        .target(
            name: "RefinerSegmentCLI",
            dependencies: ["RefinerSegment", "RefinerSegmentURLSession", "RefinerSegmentFileStore"]
        ),
        .executableTarget(name: "refiner-segment", dependencies: ["RefinerSegmentCLI"]),
        // The speed targets of DESIGN.md beside a hand-written baseline: `swift run -c release refiner-segment-bench`.
        .executableTarget(
            name: "refiner-segment-bench",
            dependencies: [
                "RefinerSegment", "RefinerSegmentURLSession", "RefinerSegmentTesting", "RefinerSegmentCLI",
                "RefinerSegmentFileStore",
            ],
            resources: [.copy("questions.txt")]
        ),
        // Test fixtures (such as a real Refiner webhook payload) are copied into each test bundle, so tests never
        // read outside the package.
        .testTarget(name: "RefinerSegmentTests", dependencies: ["RefinerSegment"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "RefinerSegmentCLITests",
            dependencies: ["RefinerSegmentCLI", "RefinerSegment"],
            resources: [.copy("Fixtures")]
        ),
        // The file-backed stores, including a store killed with SIGKILL mid-write (the built executable).
        .testTarget(
            name: "RefinerSegmentFileStoreTests",
            dependencies: [
                "RefinerSegment", "RefinerSegmentFileStore", "RefinerSegmentTesting", "RefinerSegmentURLSession",
            ]
        ),
        .testTarget(name: "RefinerSegmentDeliveryTests", dependencies: ["RefinerSegment", "RefinerSegmentTesting"]),
        // Records numbered units into a file store and prints each id once durable; the file store's crash
        // test kills it with SIGKILL again and again.
        .executableTarget(
            name: "refiner-segment-crash-harness", dependencies: ["RefinerSegment", "RefinerSegmentFileStore"]),
        .testTarget(
            name: "RefinerSegmentURLSessionTests",
            dependencies: ["RefinerSegment", "RefinerSegmentURLSession", "RefinerSegmentTesting"]
        ),
        .testTarget(
            name: "RefinerSegmentSendTests",
            dependencies: ["RefinerSegmentCLI", "RefinerSegment", "RefinerSegmentTesting"]
        ),
        // Many tenants in one process: the fair scheduler, the byte bound and the pipeline group, in virtual time.
        .testTarget(name: "RefinerSegmentTenantTests", dependencies: ["RefinerSegment", "RefinerSegmentTesting"]),
        // Hostile conditions: a faulty loopback server and soak tests, send interrupted by signals (in-process
        // and the built executable), and the write key kept out of everything that can be printed.
        .testTarget(
            name: "RefinerSegmentReliabilityTests",
            dependencies: [
                "RefinerSegment", "RefinerSegmentURLSession", "RefinerSegmentTesting", "RefinerSegmentCLI",
                "RefinerSegmentFileStore",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Upcoming features, enabled for every target in one place.
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
