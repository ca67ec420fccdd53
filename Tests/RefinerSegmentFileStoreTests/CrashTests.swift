import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentTesting
import RefinerSegmentURLSession
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An executable of this package, found next to the test bundle or in the package's `.build`.
enum BuiltExecutable {
    static func url(named name: String) -> URL? {
        var candidates: [URL] = []
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}

/// The built crash harness.
enum CrashHarness {
    static let url = BuiltExecutable.url(named: "refiner-segment-crash-harness")
}

/// A fixed-seed generator (SplitMix64), so a failing run can be repeated.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite(.serialized) struct CrashTests {
    /// Kills the harness with SIGKILL after a random number of printed ids (50 times by default, with a
    /// fixed seed; `CRASH_KILLS` and `CRASH_SEED` change them), then drains the store into a loopback server:
    /// every printed id is delivered, each under one messageId per call.
    @Test func aStoreKilledAgainAndAgainLosesNothingItAcknowledged() async throws {
        let harness = try #require(CrashHarness.url, "build the package first: the harness is an executable")
        let environment = ProcessInfo.processInfo.environment
        let kills = environment["CRASH_KILLS"].flatMap(Int.init) ?? 50
        var generator = SplitMix(state: environment["CRASH_SEED"].flatMap(UInt64.init) ?? 20_261_201)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var printed = Set<Int>()
        var next = 0
        for _ in 0..<kills {
            let process = Process()
            process.executableURL = harness
            process.arguments = [directory.path, String(next), "1000000"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            let wanted = Int.random(in: 1...40, using: &generator)
            var text = ""
            while text.split(separator: "\n").count < wanted {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            text += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            // A line cut by the kill is not a printed id.
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            printed.formUnion(lines.compactMap { Int($0) })
            next = (printed.max() ?? -1) + 1
        }
        #expect(printed.count >= kills)

        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var configuration = SegmentPipeline.Configuration(endpoint: SegmentEndpoint(baseURL: server.baseURL))
        configuration.shutdownGracePeriod = .seconds(300)
        let store = try FileMessageStore(directory: directory)
        try await SegmentPipeline.withPipeline(
            writeKey: WriteKey("wk_crash"), transport: URLSessionTransport(), configuration: configuration, store: store
        ) { _ in }
        var delivered: [String: Int] = [:]
        for request in server.requests {
            let body = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
            for message in body?["batch"] as? [[String: Any]] ?? [] {
                if let id = message["messageId"] as? String { delivered[id, default: 0] += 1 }
            }
        }
        let missing = printed.filter {
            delivered["crash-\($0)-identify"] == nil || delivered["crash-\($0)-group"] == nil
        }
        #expect(missing.isEmpty, "printed but not delivered: \(missing.sorted().prefix(10))")
        let unknown = delivered.keys.filter { !$0.hasPrefix("crash-") }
        #expect(unknown.isEmpty)
        #expect(try await store.recover(tenant: "default").messages == 0, "the store is empty after the drain")
        print("crash test: \(kills) kills, \(printed.count) ids printed, \(delivered.count) messageIds delivered")
    }
}
