import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@testable import RefinerSegmentCLI

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a tool run wrote: stdout, stderr and files.
final class ToolCapture: Sendable {
    private let state = Locked(State())
    private let failedFiles = MemoryFailedFiles()
    private let refusingFiles = MemoryFailedFiles(refusesWrites: true)
    /// The origin of the real-time `now` the tool gets by default.
    static let epoch = ContinuousClock.now

    private struct State: Sendable {
        var output: [UInt8] = []
        var error = ""
        var inputEnded = false
        var exits: [Int32] = []
    }

    var output: String { state.withLock { String(decoding: $0.output, as: UTF8.self) } }
    var error: String { state.withLock { $0.error } }
    var files: [String: [UInt8]] { failedFiles.contents }
    /// The statuses the tool asked to exit with at once.
    var exits: [Int32] { state.withLock { $0.exits } }
    /// Whether the tool has read its input to the end.
    var inputEnded: Bool { state.withLock { $0.inputEnded } }

    func io(
        input: [UInt8],
        environment: [String: String],
        interruptions: AsyncStream<Int32> = AsyncStream { _ in },
        filesAreWritable: Bool = true,
        inputFailsAtTheEnd: Bool = false,
        realFailedFile: Bool = false,
        outputIsBroken: Bool = false,
        now: @escaping @Sendable () -> Duration = { ContinuousClock.now - ToolCapture.epoch }
    ) -> ToolIO {
        ToolIO(
            openInput: { _ in
                EndReportingSource(bytes: input, failsAtTheEnd: inputFailsAtTheEnd) {
                    self.state.withLock { $0.inputEnded = true }
                }
            },
            writeOutput: { bytes in self.state.withLock { $0.output += bytes } },
            writeError: { text in self.state.withLock { $0.error += text } },
            outputIsBroken: { outputIsBroken },
            environment: environment,
            openFailedFile: realFailedFile
                ? DiskFailedFile.open : filesAreWritable ? failedFiles.open : refusingFiles.open,
            interruptions: { interruptions },
            now: now,
            exit: { status in self.state.withLock { $0.exits.append(status) } }
        )
    }
}

/// Serves bytes in small chunks and says when it reaches the end.
struct EndReportingSource: ByteSource {
    var bytes: [UInt8]
    /// Throws instead of ending, as a failing disk or a broken stream does.
    var failsAtTheEnd = false
    let onEnd: @Sendable () -> Void

    struct ReadError: Error, CustomStringConvertible {
        var description: String { "cannot read the input: Input/output error" }
    }

    mutating func read() throws -> [UInt8] {
        let chunk = Array(bytes.prefix(512))
        bytes.removeFirst(chunk.count)
        if chunk.isEmpty {
            onEnd()
            if failsAtTheEnd { throw ReadError() }
        }
        return chunk
    }
}

enum SendInput {
    /// `count` responses in the JSON form, one per line; every one makes an identify and a group.
    static func responses(_ count: Int, tag: String) -> String {
        (0..<count).map { index in
            #"{"id": "\#(tag)-\#(index)", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "s"}, "#
                + #""user": {"id": "u\#(index)"}, "account": {"id": "a\#(index % 3)"}, "#
                + #""answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]}"#
        }.joined(separator: "\n") + "\n"
    }

    static func expectedIDs(_ count: Int, tag: String) -> [String] {
        (0..<count).flatMap { ["refiner-\(tag)-\($0)-identify", "refiner-\(tag)-\($0)-group"] }
    }

    /// The messageIds of a failed file, in order: a line is a message, or a unit of messages as a JSON array.
    static func ids(inFailedFile bytes: [UInt8]) throws -> [String] {
        try units(inFailedFile: bytes).flatMap { $0 }
    }

    /// The units of a failed file, in order, each as its messageIds.
    static func units(inFailedFile bytes: [UInt8]) throws -> [[String]] {
        try String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
            if line.hasPrefix("[") {
                let array = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
                return try array.map { element in
                    let data = try JSONSerialization.data(withJSONObject: element)
                    return try SegmentMessage(json: [UInt8](data)).messageID
                }
            }
            return [try SegmentMessage(json: Array(line.utf8)).messageID]
        }
    }

    /// The messageIds a server accepted, in order.
    static func ids(acceptedBy server: LoopbackHTTPServer) -> [String] {
        server.acceptedRequests.flatMap { Wire.messages(in: $0.body).map(\.messageID) }
    }
}

/// Polls `condition` every 20 ms for at most `timeout`; true when it came true.
/// A bound, not a wait: generous, because other tests can hold a 2-core cooperative pool for tens of seconds.
func eventually(within timeout: Duration = .seconds(120), _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// `send` interrupted by SIGINT or SIGTERM while the server stalls: every message it read goes to the failed
/// file, and sending that file again completes the job, with the same messageIds every time.
@Suite(.serialized) struct SendInterruptionTests {
    static let environment = ["SEGMENT_WRITE_KEY": "wk_interrupt"]

    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalHandsEveryUndeliveredMessageToTheFailedFile(signal: Int32) async throws {
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let count = 30
        let (interruptions, interrupt) = AsyncStream.makeStream(of: Int32.self)
        let capture = ToolCapture()
        let tool = RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(count, tag: "sig\(signal)").utf8), environment: Self.environment,
                interruptions: interruptions))
        async let status = tool.run([
            "send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl",
        ])
        #expect(await eventually { capture.inputEnded && !stalling.requests.isEmpty })
        interrupt.yield(signal)
        #expect(await status == 128 + signal, "\(capture.error)")

        let failed = try #require(capture.files["failed.jsonl"], "\(capture.error)")
        let expected = SendInput.expectedIDs(count, tag: "sig\(signal)")
        #expect(try SendInput.ids(inFailedFile: failed) == expected, "every message, once, in the order read")
        #expect(capture.error.contains("\(signal == SIGINT ? "SIGINT" : "SIGTERM") received"))
        #expect(capture.error.contains("\(count * 2) undelivered messages written to failed.jsonl"))
        #expect(stalling.acceptedRequests.isEmpty)

        // Sending the failed file again completes the job; a second time sends the very same ids.
        var runs: [[String]] = []
        for _ in 0..<2 {
            let healthy = try LoopbackHTTPServer()
            defer { healthy.stop() }
            let again = ToolCapture()
            let status = await RefinerSegmentTool(io: again.io(input: failed, environment: Self.environment))
                .run(["send", "--endpoint", healthy.baseURL.absoluteString, "failed.jsonl"])
            #expect(status == 0, "\(again.error)")
            #expect(again.files.isEmpty)
            runs.append(SendInput.ids(acceptedBy: healthy))
        }
        #expect(runs[0] == expected)
        #expect(runs[1] == runs[0])
    }

    /// The failed file is the messages' last copy: when it cannot be written they go to stdout, not away.
    @Test func anUnwritableFailedFileSendsTheMessagesToStandardOutput() async throws {
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(3, tag: "nowrite").utf8), environment: Self.environment,
                filesAreWritable: false)
        ).run(["send", "--endpoint", refusing.baseURL.absoluteString, "--failed", "/nonexistent/failed.jsonl"])
        #expect(status == 1)
        #expect(try SendInput.ids(inFailedFile: Array(capture.output.utf8)) == SendInput.expectedIDs(3, tag: "nowrite"))
        #expect(capture.error.contains("6 undelivered messages written to standard output"), "\(capture.error)")
    }

    /// When the failed file and standard output both fail, the messages are lost, and `send` says so with an
    /// exit status of its own (before: it reported them as written to standard output and exited 1).
    @Test func messagesThatCannotBeWrittenAnywhereHaveAnExitStatusOfTheirOwn() async throws {
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(3, tag: "nowhere").utf8), environment: Self.environment,
                filesAreWritable: false, outputIsBroken: true)
        ).run(["send", "--endpoint", refusing.baseURL.absoluteString, "--failed", "failed.jsonl"])
        #expect(status == RefinerSegmentTool.abandoned)
        #expect(capture.error.contains("6 undelivered messages could not be written anywhere"), "\(capture.error)")
    }

    /// A read error ends the input, not the delivery of what was read before it.
    @Test func aReadErrorStillDeliversOrHandsOverWhatWasRead() async throws {
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(4, tag: "ioerr").utf8), environment: Self.environment,
                inputFailsAtTheEnd: true)
        ).run(["send", "--endpoint", refusing.baseURL.absoluteString, "--failed", "failed.jsonl"])
        #expect(status == 1)
        #expect(capture.error.contains("Input/output error"))
        let failed = try #require(capture.files["failed.jsonl"], "\(capture.error)")
        #expect(try SendInput.ids(inFailedFile: failed) == SendInput.expectedIDs(4, tag: "ioerr"))
    }

    /// In-process, with the time given: a second signal at once is the same stop; a later one writes
    /// everything undelivered to the failed file before the process is asked to exit, and nothing twice.
    @Test(arguments: [(Duration.milliseconds(100), false), (Duration.seconds(2), true)])
    func aSecondSignalIsTheSameStopOrWritesEverythingAtOnce(after gap: Duration, hurries: Bool) async throws {
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let clock = Locked(Duration.zero)
        let (interruptions, interrupt) = AsyncStream.makeStream(of: Int32.self)
        let capture = ToolCapture()
        let tool = RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(10, tag: "second").utf8), environment: Self.environment,
                interruptions: interruptions, now: { clock.withLock { $0 } }))
        async let status = tool.run([
            "send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl",
        ])
        #expect(await eventually { capture.inputEnded && !stalling.requests.isEmpty })
        interrupt.yield(SIGTERM)
        #expect(await eventually { capture.error.contains("SIGTERM received: stopping") })
        clock.withLock { $0 += gap }
        interrupt.yield(SIGINT)
        if hurries {
            #expect(await eventually { capture.exits == [128 + SIGTERM] }, "\(capture.error)")
            // The file was complete when the exit was asked for.
            let failed = try #require(capture.files["failed.jsonl"])
            #expect(try SendInput.ids(inFailedFile: failed) == SendInput.expectedIDs(10, tag: "second"))
        }
        #expect(await status == 128 + SIGTERM, "\(capture.error)")
        let failed = try #require(capture.files["failed.jsonl"], "\(capture.error)")
        #expect(try SendInput.ids(inFailedFile: failed) == SendInput.expectedIDs(10, tag: "second"), "once each")
        #expect(capture.error.contains("the same stop") == !hurries)
        #expect(capture.exits == (hurries ? [128 + SIGTERM] : []))
    }

    @Test(
        arguments: [
            // (signal, time) in order, and what each one means.
            ([(SIGINT, 0), (SIGINT, 0)], [StopPolicy.Action.stop, .ignore]),
            ([(SIGTERM, 0), (SIGHUP, 400)], [.stop, .ignore]),
            ([(SIGINT, 0), (SIGINT, 600)], [.stop, .hurry]),
            ([(SIGINT, 0), (SIGINT, 100), (SIGINT, 900), (SIGINT, 950)], [.stop, .ignore, .hurry, .abandon]),
        ] as [([(Int32, Int)], [StopPolicy.Action])])
    func theStopPolicyTellsOneStopFromTheNext(signals: [(Int32, Int)], expected: [StopPolicy.Action]) {
        var policy = StopPolicy()
        #expect(signals.map { policy.receive($0.0, at: .milliseconds($0.1)) } == expected)
    }

    @Test func withoutASignalTheExitStatusIsUnchanged() async throws {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let (interruptions, interrupt) = AsyncStream.makeStream(of: Int32.self)
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(3, tag: "calm").utf8), environment: Self.environment,
                interruptions: interruptions)
        ).run(["send", "--endpoint", server.baseURL.absoluteString])
        interrupt.yield(SIGINT)  // after the run: ignored
        #expect(status == 0, "\(capture.error)")
        #expect(SendInput.ids(acceptedBy: server) == SendInput.expectedIDs(3, tag: "calm"))
        #expect(!capture.error.contains("received"))
    }
}

/// The built `refiner-segment` executable, found next to the test bundle or in the package's `.build`.
enum BuiltTool {
    static let url: URL? = {
        var candidates: [URL] = []
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for bundle in Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        // Tests/RefinerSegmentReliabilityTests/<this file> -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent("refiner-segment") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()
}

/// The same, end to end: the built executable gets a real signal from outside.
@Suite(.serialized) struct SendProcessInterruptionTests {
    /// Runs the executable and returns it running, with its stdout and stderr in files.
    static func launch(_ arguments: [String], in directory: URL, input: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = BuiltTool.url
        process.arguments = arguments
        process.environment = ["SEGMENT_WRITE_KEY": "wk_process", "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = directory
        process.standardInput = input ?? FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("stderr.txt").path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("stderr.txt"))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func finish(_ process: Process) async -> Bool {
        if await eventually(within: .seconds(30), { !process.isRunning }) { return true }
        // SIGKILL: the tool takes SIGTERM as a request to stop gracefully, which a hung run may never finish.
        kill(process.processIdentifier, SIGKILL)
        _ = await eventually(within: .seconds(10)) { !process.isRunning }
        Issue.record("refiner-segment did not exit")
        return false
    }

    @Test(
        .enabled(if: BuiltTool.url != nil, "the built refiner-segment executable was not found next to the tests"),
        // SIGHUP: a closed terminal or ssh session (before: it killed send with everything in memory).
        arguments: [SIGINT, SIGTERM, SIGHUP])
    func theExecutableInterruptedWritesTheFailedFileAndItsRerunDeliversEverything(signal: Int32) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("refiner-segment-interrupt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let count = 20
        let tag = "proc\(signal)"
        try Data(SendInput.responses(count, tag: tag).utf8).write(to: directory.appendingPathComponent("in.jsonl"))

        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let process = try Self.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl"],
            in: directory)
        #expect(await eventually { !stalling.requests.isEmpty || !process.isRunning })
        try await Task.sleep(for: .milliseconds(300))  // the rest of the 20 lines is read while the first batch stalls
        kill(process.processIdentifier, signal)
        guard await Self.finish(process) else { return }
        let stderr = (try? String(contentsOf: directory.appendingPathComponent("stderr.txt"), encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit, "\(stderr)")
        #expect(process.terminationStatus == 128 + signal, "\(stderr)")
        let failed = try [UInt8](Data(contentsOf: directory.appendingPathComponent("failed.jsonl")))
        let expected = SendInput.expectedIDs(count, tag: tag)
        #expect(try SendInput.ids(inFailedFile: failed) == expected, "\(stderr)")

        var runs: [[String]] = []
        for run in 0..<2 {
            let healthy = try LoopbackHTTPServer()
            defer { healthy.stop() }
            let rerun = try Self.launch(
                [
                    "send", "--endpoint", healthy.baseURL.absoluteString, "--failed", "again-\(run).jsonl",
                    "failed.jsonl",
                ],
                in: directory)
            guard await Self.finish(rerun) else { return }
            #expect(rerun.terminationStatus == 0)
            runs.append(SendInput.ids(acceptedBy: healthy))
        }
        #expect(runs[0] == expected)
        #expect(runs[1] == runs[0], "a re-run sends the same messageIds, so Segment drops the duplicates")
    }

    /// Input from a pipe whose writer stays open and idle: a blocking read must not keep send from
    /// reacting to the signal.
    @Test(.enabled(if: BuiltTool.url != nil, "the built refiner-segment executable was not found next to the tests"))
    func theExecutableStopsOnASignalWhileItsStandardInputIsIdle() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("refiner-segment-interrupt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let input = Pipe()
        defer { try? input.fileHandleForWriting.close() }
        let process = try Self.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl"], in: directory,
            input: input)
        input.fileHandleForWriting.write(Data(SendInput.responses(5, tag: "stdin").utf8))
        #expect(await eventually { !stalling.requests.isEmpty || !process.isRunning })
        try await Task.sleep(for: .milliseconds(300))
        kill(process.processIdentifier, SIGTERM)
        guard await Self.finish(process) else { return }
        let stderr = (try? String(contentsOf: directory.appendingPathComponent("stderr.txt"), encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit, "\(stderr)")
        #expect(process.terminationStatus == 128 + SIGTERM, "\(stderr)")
        let failed = try [UInt8](Data(contentsOf: directory.appendingPathComponent("failed.jsonl")))
        #expect(try SendInput.ids(inFailedFile: failed) == SendInput.expectedIDs(5, tag: "stdin"), "\(stderr)")
    }

    /// A live pipe (`tail -f webhooks.jsonl | refiner-segment send`): lines are sent as they come, not once
    /// 64 KB or the end of the input have arrived.
    @Test(.enabled(if: BuiltTool.url != nil, "the built refiner-segment executable was not found next to the tests"))
    func theExecutableSendsLinesFromALivePipeAsTheyCome() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("refiner-segment-pipe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let input = Pipe()
        let process = try Self.launch(
            ["send", "--endpoint", server.baseURL.absoluteString], in: directory, input: input)
        input.fileHandleForWriting.write(Data(SendInput.responses(3, tag: "live").utf8))
        let expected = SendInput.expectedIDs(3, tag: "live")
        #expect(await eventually { SendInput.ids(acceptedBy: server) == expected || !process.isRunning })
        #expect(process.isRunning, "the input is still open")
        try input.fileHandleForWriting.close()
        guard await Self.finish(process) else { return }
        #expect(process.terminationStatus == 0)
        #expect(SendInput.ids(acceptedBy: server) == expected)
    }
}
