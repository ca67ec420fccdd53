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
    /// The most a harness may print in one run: it prints at most 40 ids (of a few bytes each) before it is
    /// killed, and what it wrote meanwhile, at most a pipe's buffer (64 KiB). More is a harness gone wrong.
    static let outputCap = 1 << 20
    /// How long one run may take to print its ids: a bound, not a wait (40 fsynced appends take well under
    /// a second alone; other tests can hold the machine's 2 cores for tens of seconds).
    static let outputBound = Duration.seconds(120)

    /// Kills the harness with SIGKILL after a random number of printed ids (50 times by default, with a
    /// fixed seed; `CRASH_KILLS` and `CRASH_SEED` change them), then drains the store into a loopback server:
    /// every printed id is delivered, each under one messageId per call.
    ///
    /// What a run prints is read with a cap (``outputCap``) and a bound (``outputBound``): a harness that
    /// prints forever, or neither prints nor exits, is killed and fails the test.
    @Test func aStoreKilledAgainAndAgainLosesNothingItAcknowledged() async throws {
        let harness = try #require(CrashHarness.url, "build the package first: the harness is an executable")
        let environment = ProcessInfo.processInfo.environment
        let kills = environment["CRASH_KILLS"].flatMap(Int.init) ?? 50
        var generator = SplitMix(state: environment["CRASH_SEED"].flatMap(UInt64.init) ?? 20_261_201)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var printed = Set<Int>()
        var next = 0
        for round in 0..<kills {
            let process = Process()
            process.executableURL = harness
            process.arguments = [directory.path, String(next), "1000000"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            let wanted = Int.random(in: 1...40, using: &generator)
            let (printedBytes, end) = await BoundedPipeRead.read(
                output.fileHandleForReading, cap: Self.outputCap, within: Self.outputBound
            ) { bytes in bytes.split(separator: UInt8(ascii: "\n")).count >= wanted }
            kill(process.processIdentifier, SIGKILL)
            guard end == .enough || end == .endOfFile else {
                Issue.record(
                    "round \(round): the harness stopped being read at \(end), after \(printedBytes.count) bytes")
                return
            }
            guard await Self.exited(process) else {
                Issue.record("round \(round): the harness did not exit within \(Self.outputBound) of SIGKILL")
                return
            }
            // The rest: what it printed before the kill, at most a pipe's buffer. The end of file may not come
            // when another test's child inherited the pipe's end; what is in the pipe is read all the same.
            let (rest, restEnd) = await BoundedPipeRead.read(
                output.fileHandleForReading, cap: Self.outputCap - printedBytes.count, within: .seconds(5))
            if case .overCap = restEnd {
                Issue.record("round \(round): the harness printed \(restEnd) after it was killed")
                return
            }
            let text = String(decoding: printedBytes + rest, as: UTF8.self)
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

    /// Whether `process` exited within ``outputBound`` (polled: a child's exit has no clock to inject).
    static func exited(_ process: Process) async -> Bool {
        let end = ContinuousClock.now + outputBound
        while process.isRunning, ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return !process.isRunning
    }

    /// `/bin/sh -c script`, started, with its standard output on a pipe.
    static func shell(_ script: String) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        return (process, output)
    }

    /// The bounds hold against children gone wrong: one that prints forever is cut at the cap, one that
    /// prints nothing and never exits at the time bound, each killed then.
    @Test func aChildGoneWrongIsCutAtTheCapOrTheBound() async throws {
        let (forever, loud) = try Self.shell("while :; do echo 1; done")
        let (bytes, end) = await BoundedPipeRead.read(loud.fileHandleForReading, cap: 4096, within: Self.outputBound)
        kill(forever.processIdentifier, SIGKILL)
        #expect(end == .overCap(4096))
        #expect(bytes.count == 4096)
        #expect(await Self.exited(forever))

        let (silent, quiet) = try Self.shell("exec sleep 600")
        let (none, timedOut) = await BoundedPipeRead.read(
            quiet.fileHandleForReading, cap: 4096, within: .milliseconds(200))
        kill(silent.processIdentifier, SIGKILL)
        #expect(timedOut == .outOfTime(.milliseconds(200)))
        #expect(none.isEmpty)
        #expect(await Self.exited(silent))
    }
}
