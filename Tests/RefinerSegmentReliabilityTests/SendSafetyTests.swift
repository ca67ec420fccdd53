import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scratch directory for one test, removed afterwards.
struct ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "refiner-segment-safety-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: url.appendingPathComponent(name))
    }

    func bytes(_ name: String) -> [UInt8]? {
        (try? Data(contentsOf: url.appendingPathComponent(name))).map { [UInt8]($0) }
    }

    func text(_ name: String) -> String { bytes(name).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// `count` built messages, one per line (the form every version of `send` reads), as `render` prints them.
func builtMessages(_ count: Int, tag: String) throws -> String {
    var store = InMemoryProfileStore()
    let input = SendInput.responses(count, tag: tag).split(separator: "\n")
    var lines: [String] = []
    for line in input {
        for message in try store.process(try SurveyResponse(json: Array(line.utf8)), with: SegmentCallBuilder()) {
            lines.append(String(decoding: message.json, as: UTF8.self))
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// The failed file is the only copy of what was not delivered: each way an operator runs, re-runs, stops or
/// shares `send` keeps every line of it, on the built executable and in-process with the real file.
@Suite(.serialized) struct SendSafetyTests {
    static let enabled = BuiltTool.url != nil
    static let reason: Comment = "the built refiner-segment executable was not found next to the tests"
    /// The most a run's standard output or error may hold here (a few progress lines, or 30 failed pairs):
    /// more is a run gone wrong, cut and reported instead of read into memory without end.
    static let outputCap = 1 << 20
    /// How long reading a run's output may take: a bound, not a wait (a loaded 2-core machine is slow).
    static let outputBound = Duration.seconds(120)

    /// The executable's stderr, for messages.
    static func stderr(_ directory: ScratchDirectory) -> String { directory.text("stderr.txt") }

    // MARK: Signals

    /// `timeout -s INT` signals the process and then its group: two signals a moment apart are one stop,
    /// which still writes the failed file (before: the second one exited at once, losing everything read).
    @Test(.enabled(if: enabled, reason), arguments: [SIGINT, SIGTERM])
    func twoSignalsInQuickSuccessionAreOneStop(signal: Int32) async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        try directory.write("in.jsonl", SendInput.responses(20, tag: "twice\(signal)"))
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let process = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl"],
            in: directory.url)
        #expect(await eventually { !stalling.requests.isEmpty || !process.isRunning })
        try await Task.sleep(for: .milliseconds(300))
        kill(process.processIdentifier, signal)
        try await Task.sleep(for: .milliseconds(50))
        kill(process.processIdentifier, signal)
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationReason == .exit, "\(Self.stderr(directory))")
        #expect(process.terminationStatus == 128 + signal, "\(Self.stderr(directory))")
        let failed = try #require(directory.bytes("failed.jsonl"), "\(Self.stderr(directory))")
        #expect(try SendInput.ids(inFailedFile: failed) == SendInput.expectedIDs(20, tag: "twice\(signal)"))
        // (Whether the second one is reported as "the same stop" depends on timing: the signals may also be
        // merged into one before they reach the process.)
    }

    /// A real second interrupt (after the window) cuts the grace short, but the failed file is written first.
    @Test(.enabled(if: enabled, reason))
    func aLaterSecondSignalWritesTheFailedFileAndExits() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        try directory.write("in.jsonl", SendInput.responses(20, tag: "hurry"))
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let process = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl"],
            in: directory.url)
        #expect(await eventually { !stalling.requests.isEmpty || !process.isRunning })
        try await Task.sleep(for: .milliseconds(300))
        kill(process.processIdentifier, SIGINT)
        try await Task.sleep(for: .milliseconds(700))  // past the 0.5 s window, inside the 1 s grace
        kill(process.processIdentifier, SIGINT)
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationReason == .exit, "\(Self.stderr(directory))")
        #expect(process.terminationStatus == 130, "\(Self.stderr(directory))")
        let failed = try #require(directory.bytes("failed.jsonl"), "\(Self.stderr(directory))")
        #expect(Set(try SendInput.ids(inFailedFile: failed)) == Set(SendInput.expectedIDs(20, tag: "hurry")))
    }

    /// A reader of standard error that goes away (`2>&1 | head -1`) ends the progress lines, not the run
    /// (before: SIGPIPE killed `send` with every message in memory).
    @Test(.enabled(if: enabled, reason))
    func aBrokenStandardErrorDoesNotStopSend() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        try directory.write("in.jsonl", SendInput.responses(10, tag: "pipe"))
        let answers = Locked(0)
        // Two 503s, each retried after a backoff (a progress line each), then 200.
        let server = try LoopbackHTTPServer { _ in
            answers.withLock { count in
                count += 1
                return count <= 2 ? .status(503) : .status(200, body: "{}")
            }
        }
        defer { server.stop() }
        let errors = Pipe()
        let process = Process()
        process.executableURL = BuiltTool.url
        process.arguments = ["send", "--endpoint", server.baseURL.absoluteString, "in.jsonl"]
        process.environment = ["SEGMENT_WRITE_KEY": "wk_process", "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = directory.url
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        try errors.fileHandleForWriting.close()
        // Read the first progress line, then go away, as `head -1` does.
        let (_, end) = await BoundedPipeRead.read(
            errors.fileHandleForReading, cap: Self.outputCap, within: Self.outputBound
        ) { $0.contains(UInt8(ascii: "\n")) }
        try errors.fileHandleForReading.close()
        guard end == .enough || end == .endOfFile else {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("standard error stopped being read at \(end)")
            return
        }
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationReason == .exit, "killed by signal \(process.terminationStatus)")
        #expect(process.terminationStatus == 0)
        #expect(SendInput.ids(acceptedBy: server) == SendInput.expectedIDs(10, tag: "pipe"))
    }

    // MARK: The failed file between runs

    /// Two runs, one after the other and two at once, into one failed file: every run's failures stay
    /// (before: each run replaced the file; two at once lost one run's messages).
    @Test func runsAppendToTheFailedFileAndNeverReplaceIt() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let failed = directory.path("failed.jsonl")
        func run(_ tag: String, count: Int) async -> Int32 {
            let capture = ToolCapture()
            let io = capture.io(
                input: Array(SendInput.responses(count, tag: tag).utf8), environment: ["SEGMENT_WRITE_KEY": "wk"],
                realFailedFile: true)
            return await RefinerSegmentTool(io: io).run([
                "send", "--endpoint", refusing.baseURL.absoluteString, "--failed", failed,
            ])
        }
        #expect(await run("first", count: 5) == 1)
        async let second = run("second", count: 40)
        async let third = run("third", count: 40)
        #expect(await [second, third] == [1, 1])
        let ids = try SendInput.ids(inFailedFile: try #require(directory.bytes("failed.jsonl")))
        let expected =
            SendInput.expectedIDs(5, tag: "first") + SendInput.expectedIDs(40, tag: "second")
            + SendInput.expectedIDs(40, tag: "third")
        #expect(ids.count == expected.count)
        #expect(Set(ids) == Set(expected))
        #expect(Array(ids.prefix(10)) == SendInput.expectedIDs(5, tag: "first"), "the first run's lines come first")
        // Whole lines: every one parses.
        #expect(try SendInput.units(inFailedFile: try #require(directory.bytes("failed.jsonl"))).count == 85)
    }

    /// A full disk (here: a file size limit) cuts a failed write back, so the file never ends in half a line,
    /// and the messages go to standard output with the reason (before: SIGXFSZ killed the process, or a
    /// replaced file was left cut).
    @Test(.enabled(if: enabled, reason))
    func aFullDiskLeavesWholeLinesAndTheMessagesOnStandardOutput() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        try directory.write("in.jsonl", SendInput.responses(30, tag: "full"))
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // At most 1 KiB (or 512 bytes) per file: the failed file's first append (30 pairs, ~10 KB) cannot fit.
        // Standard output and error are pipes, which the limit does not touch (each stays under a pipe's 64 KB).
        process.arguments = [
            "-c", "ulimit -f 1 && exec \"$0\" \"$@\"", BuiltTool.url!.path, "send",
            "--endpoint", refusing.baseURL.absoluteString, "--failed", "failed.jsonl", "in.jsonl",
        ]
        process.environment = ["SEGMENT_WRITE_KEY": "wk_process", "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = directory.url
        process.standardInput = FileHandle.nullDevice
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        try output.fileHandleForWriting.close()
        try errors.fileHandleForWriting.close()
        // Both read while it runs (a pipe it filled would stop it), each to its end, with a cap and a bound.
        async let outputRead = BoundedPipeRead.read(
            output.fileHandleForReading, cap: Self.outputCap, within: Self.outputBound)
        async let errorsRead = BoundedPipeRead.read(
            errors.fileHandleForReading, cap: Self.outputCap, within: Self.outputBound)
        let (stdoutBytes, stdoutEnd) = await outputRead
        let (stderrBytes, stderrEnd) = await errorsRead
        guard stdoutEnd == .endOfFile, stderrEnd == .endOfFile else {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("standard output stopped being read at \(stdoutEnd), standard error at \(stderrEnd)")
            return
        }
        guard await SendProcessInterruptionTests.finish(process) else { return }
        let stderr = String(decoding: stderrBytes, as: UTF8.self)
        #expect(process.terminationReason == .exit, "\(stderr)")
        #expect(process.terminationStatus == 1)
        let inFile = try SendInput.ids(inFailedFile: directory.bytes("failed.jsonl") ?? [])
        let onOutput = try SendInput.ids(inFailedFile: stdoutBytes)
        #expect(Set(inFile + onOutput) == Set(SendInput.expectedIDs(30, tag: "full")), "\(stderr)")
        #expect(inFile.count + onOutput.count == 60)
        #expect(stderr.contains("cannot write to"), "\(stderr)")
    }

    /// The failed file holds personal data: created 0600 whatever the umask, and an existing file that is a
    /// symbolic link, another user's, or readable by others is refused before anything is sent.
    @Test func theFailedFileIsPrivateAndNeverFollowsALink() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        func run(failed: String) async -> (Int32, ToolCapture) {
            let capture = ToolCapture()
            let io = capture.io(
                input: Array(SendInput.responses(2, tag: "private").utf8),
                environment: ["SEGMENT_WRITE_KEY": "wk"], realFailedFile: true)
            let status = await RefinerSegmentTool(io: io).run([
                "send", "--endpoint", refusing.baseURL.absoluteString, "--failed", failed,
            ])
            return (status, capture)
        }
        let previous = umask(0o022)
        defer { umask(previous) }

        let (status, _) = await run(failed: directory.path("new.jsonl"))
        #expect(status == 1)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path("new.jsonl"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // A link planted at the name, pointing at another file of the user's.
        try directory.write("precious.txt", "keep me\n")
        try FileManager.default.createSymbolicLink(
            atPath: directory.path("link.jsonl"), withDestinationPath: directory.path("precious.txt"))
        let sent = refusing.requests.count
        let (linkStatus, linkCapture) = await run(failed: directory.path("link.jsonl"))
        #expect(linkStatus == 1)
        #expect(linkCapture.error.contains("symbolic link"), "\(linkCapture.error)")
        #expect(directory.text("precious.txt") == "keep me\n")
        #expect(refusing.requests.count == sent, "nothing is sent that could not be kept: \(linkCapture.error)")

        try directory.write("shared.jsonl", "")
        chmod(directory.path("shared.jsonl"), 0o644)
        let (sharedStatus, sharedCapture) = await run(failed: directory.path("shared.jsonl"))
        #expect(sharedStatus == 1)
        #expect(sharedCapture.error.contains("readable or writable by others (mode 644)"), "\(sharedCapture.error)")
        #expect(directory.text("shared.jsonl").isEmpty)

        if geteuid() == 0 {
            try directory.write("theirs.jsonl", "")
            chmod(directory.path("theirs.jsonl"), 0o600)
            chown(directory.path("theirs.jsonl"), 65534, 65534)
            let (theirStatus, theirCapture) = await run(failed: directory.path("theirs.jsonl"))
            #expect(theirStatus == 1)
            #expect(theirCapture.error.contains("belongs to another user"), "\(theirCapture.error)")
        }
    }

    // MARK: Re-sending the failed file in place

    /// `send refiner-segment-failed.jsonl` stopped while the file is still being read: it keeps every line
    /// (before: it was rewritten with only what that run had read; 27,684 of 36,000 messages were lost).
    @Test(.enabled(if: enabled, reason))
    func anInterruptedInPlaceResendKeepsEveryLine() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        // More messages than the queue holds (10,000), so the reading waits while the first batch stalls.
        let original = try builtMessages(6_000, tag: "inplace")
        try directory.write(RefinerSegmentTool.defaultFailedFileName, original)
        chmod(directory.path(RefinerSegmentTool.defaultFailedFileName), 0o600)
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let process = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString, RefinerSegmentTool.defaultFailedFileName],
            in: directory.url)
        #expect(await eventually { !stalling.requests.isEmpty || !process.isRunning })
        try await Task.sleep(for: .milliseconds(500))
        kill(process.processIdentifier, SIGINT)
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationStatus == 130, "\(Self.stderr(directory))")
        #expect(directory.text(RefinerSegmentTool.defaultFailedFileName) == original, "\(Self.stderr(directory))")
        #expect(Self.stderr(directory).contains("was left as it was"), "\(Self.stderr(directory))")
    }

    /// An in-place re-send that delivers everything removes the file (before: the stale file stayed, and
    /// the next re-send sent it all again); one that fails some keeps exactly those.
    @Test(.enabled(if: enabled, reason))
    func aCompleteInPlaceResendLeavesOnlyWhatIsUndelivered() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let name = RefinerSegmentTool.defaultFailedFileName
        try directory.write(name, try builtMessages(10, tag: "done"))
        chmod(directory.path(name), 0o600)
        // First a server that refuses everything: the file is rewritten with the same messages, a unit a line;
        // then a healthy one: everything is delivered and the file goes.
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let first = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", refusing.baseURL.absoluteString, name], in: directory.url)
        guard await SendProcessInterruptionTests.finish(first) else { return }
        #expect(first.terminationStatus == 1)
        let kept = try SendInput.units(inFailedFile: try #require(directory.bytes(name)))
        #expect(kept.flatMap { $0 } == SendInput.expectedIDs(10, tag: "done"), "every message once")
        #expect(kept.allSatisfy { $0.count == 2 }, "now one unit per line")

        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let second = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", healthy.baseURL.absoluteString, name], in: directory.url)
        guard await SendProcessInterruptionTests.finish(second) else { return }
        #expect(second.terminationStatus == 0, "\(Self.stderr(directory))")
        #expect(SendInput.ids(acceptedBy: healthy) == SendInput.expectedIDs(10, tag: "done"))
        #expect(!FileManager.default.fileExists(atPath: directory.path(name)), "no stale failed file")
    }

    /// The failed file as standard input (`send < refiner-segment-failed.jsonl`) is the same in-place
    /// re-send: told by the descriptor's device and inode, so a refused batch is not appended to the very
    /// file being read (which would read its own failures again, for ever).
    @Test(.enabled(if: enabled, reason))
    func theFailedFileOnStandardInputIsAnInPlaceResend() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let name = RefinerSegmentTool.defaultFailedFileName
        try directory.write(name, try builtMessages(5, tag: "stdin"))
        chmod(directory.path(name), 0o600)
        let refusing = try LoopbackHTTPServer { _ in .status(400) }
        defer { refusing.stop() }
        let input = try #require(FileHandle(forReadingAtPath: directory.path(name)))
        let process = Process()
        process.executableURL = BuiltTool.url
        process.arguments = ["send", "--endpoint", refusing.baseURL.absoluteString]
        process.environment = ["SEGMENT_WRITE_KEY": "wk_process", "PATH": "/usr/bin:/bin"]
        process.currentDirectoryURL = directory.url
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationStatus == 1)
        let kept = try SendInput.units(inFailedFile: try #require(directory.bytes(name)))
        #expect(kept.flatMap { $0 } == SendInput.expectedIDs(5, tag: "stdin"), "each message once, not appended again")
        #expect(SendInput.ids(acceptedBy: refusing).isEmpty)
    }

    /// A line of the failed file that `send` cannot read is reported and kept: the in-place re-send that
    /// replaces the file must not drop it.
    @Test(.enabled(if: enabled, reason))
    func anInPlaceResendKeepsTheLinesItCannotRead() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let name = RefinerSegmentTool.defaultFailedFileName
        try directory.write(name, try builtMessages(3, tag: "bad") + "{\"type\": \"identify\", \"messageId\": \"m\"}\n")
        chmod(directory.path(name), 0o600)
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let process = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", healthy.baseURL.absoluteString, name], in: directory.url)
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationStatus == 1, "\(Self.stderr(directory))")
        #expect(SendInput.ids(acceptedBy: healthy) == SendInput.expectedIDs(3, tag: "bad"))
        #expect(directory.text(name) == "{\"type\": \"identify\", \"messageId\": \"m\"}\n", "\(Self.stderr(directory))")
        #expect(Self.stderr(directory).contains("line 7: skipped"))
    }

    /// While an in-place re-send reads the failed file, another run appends to it: the swap at the end
    /// carries those lines over, under the lock, and the other run's later appends reach the new file.
    @Test func theInPlaceSwapKeepsWhatAnotherRunAppendedMeanwhile() throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let path = directory.path("failed.jsonl")
        try directory.write("failed.jsonl", "old 1\nold 2\n")
        chmod(path, 0o600)
        var status = stat()
        #expect(stat(path, &status) == 0)
        let identity = FileIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        let inPlace = try DiskFailedFile.open(path, input: identity)
        let other = try DiskFailedFile.open(path, input: nil)
        #expect(inPlace.isInPlace && !other.isInPlace)
        try inPlace.append(Array("old 2\n".utf8))  // this run read both lines; the second failed again
        try other.append(Array("other 1\n".utf8))  // another run, meanwhile
        #expect(directory.text("failed.jsonl") == "old 1\nold 2\nother 1\n", "the file is not touched while read")
        let note = try inPlace.finish(InputProgress(isComplete: true, bytesConsumed: "old 1\nold 2\n".utf8.count))
        #expect(note?.contains("still undelivered") == true)
        #expect(directory.text("failed.jsonl") == "old 2\nother 1\n")
        try other.append(Array("other 2\n".utf8))  // reopened: the name now holds the new file
        #expect(directory.text("failed.jsonl") == "old 2\nother 1\nother 2\n")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).filter {
            $0.hasSuffix(".tmp")
        }
        #expect(leftovers.isEmpty)
    }

    // MARK: Live pipes

    /// A response without an account (an identify alone) on a live pipe is sent at once, not held for a
    /// group that may follow on the next line (before: held until the next line, for ever with `tail -f`).
    @Test(.enabled(if: enabled, reason))
    func aLoneIdentifyOnALivePipeIsSentAtOnce() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        var store = InMemoryProfileStore()
        let response = SurveyResponse(
            id: "lone", completedAt: Responses.completedAt, survey: Survey(id: "s"), user: User(id: "u-lone"),
            answers: [Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO")])
        let identify = try #require(try store.process(response, with: SegmentCallBuilder()).first)
        let input = Pipe()
        let process = try SendProcessInterruptionTests.launch(
            ["send", "--endpoint", server.baseURL.absoluteString], in: directory.url, input: input)
        input.fileHandleForWriting.write(Data(identify.json + [UInt8(ascii: "\n")]))
        #expect(
            await eventually(within: .seconds(10)) { SendInput.ids(acceptedBy: server) == ["refiner-lone-identify"] })
        #expect(process.isRunning, "the input is still open")
        try input.fileHandleForWriting.close()
        guard await SendProcessInterruptionTests.finish(process) else { return }
        #expect(process.terminationStatus == 0)
    }
}

extension RefinerSegmentTool {
    /// The default failed file's name, as the usage text gives it.
    static let defaultFailedFileName = "refiner-segment-failed.jsonl"
}
