import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `send --store DIR` on the built executable: killed with SIGKILL at random moments, or by
/// FoundationNetworking's trap, and run again, the server ends with every message of the input (by
/// messageId); a second `send` on the same DIR is refused naming the first one's pid; `store status` says
/// what is held.
@Suite(.serialized) struct SendStoreTests {
    /// A directory of its own, with `in.jsonl` holding `count` responses.
    struct Workspace {
        let directory: URL
        let expected: [String]

        init(count: Int, tag: String) throws {
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("refiner-segment-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(SendInput.responses(count, tag: tag).utf8).write(to: directory.appendingPathComponent("in.jsonl"))
            expected = SendInput.expectedIDs(count, tag: tag)
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }

        /// Starts the executable with `arguments`; its standard output and error go to `<name>.out`, `<name>.err`.
        func launch(
            _ arguments: [String], name: String, environment: [String: String] = [:], input: FileHandle? = nil
        ) throws -> Process {
            let process = Process()
            process.executableURL = BuiltTool.url
            process.arguments = arguments
            process.environment = ["SEGMENT_WRITE_KEY": "wk_store", "PATH": "/usr/bin:/bin"].merging(environment) {
                $1
            }
            process.currentDirectoryURL = directory
            process.standardInput = input ?? FileHandle.nullDevice
            for stream in ["out", "err"] {
                _ = FileManager.default.createFile(atPath: path("\(name).\(stream)"), contents: nil)
            }
            process.standardOutput = try FileHandle(forWritingTo: url("\(name).out"))
            process.standardError = try FileHandle(forWritingTo: url("\(name).err"))
            try process.run()
            return process
        }

        /// `send --store store` into `server`.
        func send(_ server: LoopbackHTTPServer, name: String) throws -> Process {
            try launch(
                [
                    "send", "--endpoint", server.baseURL.absoluteString, "--store", "store", "--failed",
                    "failed.jsonl", "in.jsonl",
                ], name: name)
        }

        func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
        func path(_ name: String) -> String { url(name).path }
        func text(_ name: String) -> String { (try? String(contentsOf: url(name), encoding: .utf8)) ?? "" }

        /// Waits (a bound, not a timing) for the process to end; false, with an issue, when it did not.
        func finish(_ process: Process, within bound: Duration = .seconds(120)) async -> Bool {
            if await eventually(within: bound, { !process.isRunning }) { return true }
            // SIGKILL: the tool takes SIGTERM as a request to stop gracefully, which a hung run may never finish.
            kill(process.processIdentifier, SIGKILL)
            _ = await eventually(within: .seconds(10)) { !process.isRunning }
            Issue.record("refiner-segment did not exit")
            return false
        }

        /// Kills the process with SIGKILL and waits for it to be gone.
        func killHard(_ process: Process) async {
            kill(process.processIdentifier, SIGKILL)
            _ = await finish(process)
        }
    }

    static let enabled = BuiltTool.url != nil
    static let missing: Comment = "the built refiner-segment executable was not found next to the tests"

    /// What every run of `send --store` delivered in all: each input message at least once, nothing else.
    static func expectEveryMessageByMessageID(_ server: LoopbackHTTPServer, _ workspace: Workspace, seed: UInt64) {
        let delivered = SendInput.ids(acceptedBy: server)
        let missing = Set(workspace.expected).subtracting(delivered)
        let foreign = Set(delivered).subtracting(workspace.expected)
        #expect(
            missing.isEmpty, "seed \(seed): \(missing.count) messages never delivered, such as \(missing.first ?? "")")
        #expect(foreign.isEmpty, "seed \(seed): messageIds that are not the input's: \(foreign.prefix(3))")
    }

    @Test(.enabled(if: enabled, missing))
    func aSendKilledAtRandomMomentsIsFinishedByItsRerun() async throws {
        let seed = SeededGenerator.seed()
        var random = SeededGenerator(seed: seed)
        let workspace = try Workspace(count: 1000, tag: "kill")
        // Each round's server stalls (a request in flight at the kill), answers slowly (some batches
        // delivered, some in flight), or, in the first round only, answers 503 (the retry schedule is kept in
        // the store across runs: many failures would put the last run's first attempt minutes away). Rounds are
        // cut by the kill, not by time: a stalled or refused run cannot finish by itself, so a slow machine
        // only moves where the kill lands.
        enum Mode { case stall, slow, unavailable }
        let mode = Locked(Mode.unavailable)
        let server = try LoopbackHTTPServer { _ in
            switch mode.withLock({ $0 }) {
            case .stall: return .hold
            case .slow: return .delay(.milliseconds(300), then: .status(200, body: "{}"))
            case .unavailable: return .status(503)
            }
        }
        defer { server.stop() }
        var kills = 0
        // More rounds with STORE_KILL_ROUNDS (and a failing seed again with RELIABILITY_SEED).
        let rounds = ProcessInfo.processInfo.environment["STORE_KILL_ROUNDS"].flatMap { Int($0) } ?? 6
        for round in 0..<rounds {
            mode.withLock { $0 = round == 0 ? .unavailable : (Bool.random(using: &random) ? .stall : .slow) }
            let process = try workspace.send(server, name: "run-\(round)")
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...1500, using: &random)))
            guard process.isRunning else {
                // A slow round may deliver everything and end: the job is done, and the next round sends anew.
                _ = await workspace.finish(process)
                continue
            }
            await workspace.killHard(process)
            kills += 1
        }
        mode.withLock { $0 = .slow }
        let last = try workspace.send(server, name: "last")
        guard await workspace.finish(last) else { return }
        #expect(last.terminationStatus == 0, "seed \(seed): \(workspace.text("last.err"))")
        Self.expectEveryMessageByMessageID(server, workspace, seed: seed)
        #expect(kills > 0, "seed \(seed): no run was cut short")
        print("send --store: \(kills) SIGKILLs (seed \(seed)), \(SendInput.ids(acceptedBy: server).count) deliveries")
        #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.jsonl")))
        // The job is done: the store is empty and keeps no cursor, so a later run of the same file sends it anew.
        #expect(!FileManager.default.fileExists(atPath: workspace.path("store/input-cursor.json")))
    }

    @Test(.enabled(if: enabled, missing))
    func aRerunOfACutShortSendRecordsOnlyWhatCameAfterTheCursor() async throws {
        let workspace = try Workspace(count: 40, tag: "cursor")
        defer { workspace.remove() }
        // Holds every request: everything read is accepted into the store, and nothing is delivered.
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.send(stalling, name: "first")
        #expect(await eventually { !stalling.requests.isEmpty || !first.isRunning })
        #expect(
            await eventually {
                workspace.text("store/input-cursor.json").contains(#""line":40"#) || !first.isRunning
            })
        await workspace.killHard(first)
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.send(healthy, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("resumes the run that stopped after line 40 of in.jsonl"), "\(stderr)")
        #expect(stderr.contains("holds 80 messages from an earlier run"), "\(stderr)")
        #expect(stderr.contains("40 lines accepted by an earlier run were not sent again"), "\(stderr)")
        // Every message exactly once: what the store held, and nothing of the input a second time.
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == workspace.expected.sorted(), "\(stderr)")
    }

    /// A kill right after an append returns, before anything else: the cursor must already cover that
    /// append's units, or the re-run records them again (sent twice, counted twice).
    @Test(.enabled(if: enabled, missing))
    func aKillJustAfterAnAppendIsNeitherSentNorCountedTwice() async throws {
        let workspace = try Workspace(count: 600, tag: "window")
        defer { workspace.remove() }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.launch(
            [
                "send", "--endpoint", stalling.baseURL.absoluteString, "--store", "store", "--failed", "failed.jsonl",
                "in.jsonl",
            ], name: "first", environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "1"])
        guard await workspace.finish(first) else { return }
        #expect(first.terminationReason == .uncaughtSignal && first.terminationStatus == SIGKILL)
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.send(healthy, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("lines accepted by an earlier run were not sent again"), "\(stderr)")
        // Every message exactly once at the server, and the summary counts each once.
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == workspace.expected.sorted(), "\(stderr)")
        #expect(stderr.contains("600 of 600 lines read"), "\(stderr)")
        #expect(stderr.contains("1200 delivered, 0 failed"), "\(stderr)")
    }

    /// What an append cut short inside its write leaves: units after the cursor, without their mark (made
    /// here by appending the next lines' messages with no mark). The re-run that resumes drops them and reads
    /// those lines again: each message once at the server.
    @Test(.enabled(if: enabled, missing))
    func aRerunDropsWhatAnUnfinishedAppendLeftAfterTheCursor() async throws {
        let workspace = try Workspace(count: 600, tag: "cut")
        defer { workspace.remove() }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.launch(
            [
                "send", "--endpoint", stalling.baseURL.absoluteString, "--store", "store", "--failed", "failed.jsonl",
                "in.jsonl",
            ], name: "first", environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "1"])
        guard await workspace.finish(first) else { return }
        do {
            // The kill came before the cursor's copy was written: the store's own mark says where it got.
            let store = try FileMessageStore(directory: workspace.url("store"))
            let cursor = try JSONSerialization.jsonObject(with: Data(try #require(store.markAtOpen)))
            let line = try #require((cursor as? [String: Any])?["line"] as? Int)
            try #require(line < 596)
            let orphans = try (line..<line + 4).map { index in
                [
                    try SegmentMessage(
                        json: Array(
                            #"{"type":"identify","messageId":"refiner-cut-\#(index)-identify","userId":"u"}"#.utf8))
                ]
            }
            #expect(try await store.append(orphans, tenant: "default") == 4)
        }
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.send(healthy, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("store held 4 messages of an append the earlier run did not finish"), "\(stderr)")
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == workspace.expected.sorted(), "\(stderr)")
        #expect(stderr.contains("1200 delivered, 0 failed"), "\(stderr)")
    }

    @Test(.enabled(if: enabled, missing))
    func aStopSignalLeavesWhatIsUndeliveredInTheStoreNotTheFailedFile() async throws {
        let workspace = try Workspace(count: 40, tag: "signal")
        defer { workspace.remove() }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.send(stalling, name: "first")
        #expect(
            await eventually {
                workspace.text("store/input-cursor.json").contains(#""line":40"#) || !first.isRunning
            })
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("80 messages left in store"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.jsonl")))
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.send(healthy, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "\(workspace.text("rerun.err"))")
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == workspace.expected.sorted())
    }

    /// A pipe cannot be read again: what `send --store` read from one and the store never accepted (the store
    /// was full, and a stop signal came) goes to the failed file, where it used to go nowhere ("read but not
    /// queued"); the rest is in the store. The two together hold every message of the input, once.
    @Test(.enabled(if: enabled, missing))
    func aStopWhileTheStoreIsFullKeepsWhatAPipeGaveInTheFailedFile() async throws {
        let workspace = try Workspace(count: 60, tag: "pipefull")
        defer { workspace.remove() }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        // The whole input fits the pipe's buffer: it is written and closed before the run reads it, and read at
        // once; a store of 16 KiB takes a few units of it and the rest waits for room.
        let input = Pipe()
        input.fileHandleForWriting.write(try Data(contentsOf: workspace.url("in.jsonl")))
        try input.fileHandleForWriting.close()
        let first = try workspace.launch(
            [
                "send", "--endpoint", stalling.baseURL.absoluteString, "--store", "store", "--failed",
                "failed.jsonl",
            ], name: "first", environment: ["REFINER_SEGMENT_TEST_STORE_MAX_BYTES": "16384"],
            input: input.fileHandleForReading)
        try input.fileHandleForReading.close()
        let storeBytes = {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: workspace.path("store"))) ?? []
            return names.filter { $0.hasPrefix("segment-") }.reduce(0) { total, name in
                total
                    + ((try? FileManager.default.attributesOfItem(atPath: workspace.path("store/\(name)")))?[.size]
                        as? Int ?? 0)
            }
        }
        // Full (the next unit would pass the bound) and sending: the units after it wait for room.
        #expect(await eventually { (storeBytes() > 8192 && !stalling.requests.isEmpty) || !first.isRunning })
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("read but not queued"), "\(stderr)")
        let failed = try #require(try? Data(contentsOf: workspace.url("failed.jsonl")), "\(stderr)")
        let kept = try SendInput.ids(inFailedFile: [UInt8](failed))
        #expect(!kept.isEmpty)
        // The re-run (nothing on its standard input) sends what the store holds.
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.launch(
            ["send", "--endpoint", healthy.baseURL.absoluteString, "--store", "store", "--failed", "rerun.jsonl"],
            name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "\(workspace.text("rerun.err"))")
        let delivered = SendInput.ids(acceptedBy: healthy)
        #expect(!delivered.isEmpty)
        #expect(Set(delivered).isDisjoint(with: kept), "a message both in the store and in the failed file")
        #expect((delivered + kept).sorted() == workspace.expected.sorted(), "\(stderr)")
    }

    /// FoundationNetworking's `fatalError` on an answer cut in its head (swift-corelibs-foundation#5285)
    /// takes the whole process down; what it had accepted is in the store, and the re-run delivers it all.
    @Test(.enabled(if: enabled, missing))
    func aSendTakenDownByTheTransportTrapLosesNothing() async throws {
        let workspace = try Workspace(count: 60, tag: "trap")
        defer { workspace.remove() }
        let cutting = Locked(true)
        let server = try LoopbackHTTPServer { _ in
            cutting.withLock { $0 }
                ? .truncateHead(SegmentResponse(statusCode: 200, body: Array("{}".utf8))) : .status(200, body: "{}")
        }
        defer { server.stop() }
        let first = try workspace.send(server, name: "first")
        #expect(await eventually { !server.requests.isEmpty || !first.isRunning })
        // Where the toolchain has the fix, the cut answer is a transport error and the run retries: it is then
        // killed instead. Either way the re-run below finishes the job.
        _ = await eventually(within: .seconds(20)) { !first.isRunning }
        let trapped = !first.isRunning && first.terminationReason == .uncaughtSignal
        if first.isRunning { await workspace.killHard(first) }
        cutting.withLock { $0 = false }
        let rerun = try workspace.send(server, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "trapped: \(trapped); \(workspace.text("rerun.err"))")
        Self.expectEveryMessageByMessageID(server, workspace, seed: 0)
    }

    @Test(.enabled(if: enabled, missing))
    func aSecondSendOnTheSameStoreIsRefusedNamingTheFirst() async throws {
        let workspace = try Workspace(count: 5, tag: "lock")
        defer { workspace.remove() }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.send(stalling, name: "first")
        #expect(await eventually { !stalling.requests.isEmpty || !first.isRunning })
        let second = try workspace.send(stalling, name: "second")
        guard await workspace.finish(second) else { return }
        let status = try workspace.launch(["store", "status", "store"], name: "status")
        guard await workspace.finish(status) else { return }
        await workspace.killHard(first)
        let holder = "store is in use by process \(first.processIdentifier)"
        #expect(second.terminationStatus == 1)
        #expect(workspace.text("second.err").contains(holder), "\(workspace.text("second.err"))")
        #expect(status.terminationStatus == 1)
        #expect(workspace.text("status.err").contains(holder), "\(workspace.text("status.err"))")
        #expect(!workspace.text("second.err").contains("lines read"), "the refused run read nothing")
    }

    @Test(.enabled(if: enabled, missing))
    func messagesThatFailForGoodAreInTheFailedFileAndNotInTheStore() async throws {
        let workspace = try Workspace(count: 10, tag: "fail")
        defer { workspace.remove() }
        let refusing = try LoopbackHTTPServer { _ in .status(400, body: #"{"error":"bad"}"#) }
        defer { refusing.stop() }
        let run = try workspace.send(refusing, name: "run")
        guard await workspace.finish(run) else { return }
        #expect(run.terminationStatus == 1, "\(workspace.text("run.err"))")
        let failed = try [UInt8](Data(contentsOf: workspace.url("failed.jsonl")))
        #expect(try SendInput.ids(inFailedFile: failed).sorted() == workspace.expected.sorted())
        let status = try workspace.launch(["store", "status", "store"], name: "status")
        guard await workspace.finish(status) else { return }
        #expect(workspace.text("status.out").contains("nothing waiting, no pause"), "\(workspace.text("status.out"))")
    }

    /// Ages and sizes vary from run to run; the rest of `store status` is fixed.
    static func masked(_ text: String) -> String {
        var text = text
        for (pattern, replacement) in [
            (#"\b\d+ (d|h|min|s)\b( \d+ (h|min|s)\b)?"#, "<age>"),
            (#"\d+(\.\d)? (bytes|KiB|MiB)"#, "<size>"),
            (#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"#, "<time>"),
        ] {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return text
    }

    @Test(.enabled(if: enabled, missing))
    func storeStatusSaysWhatIsHeldHowOldAndThePause() async throws {
        let workspace = try Workspace(count: 3, tag: "status")
        defer { workspace.remove() }
        let limiting = try LoopbackHTTPServer { _ in .status(429, headerFields: ["Retry-After": "3600"]) }
        defer { limiting.stop() }
        let first = try workspace.send(limiting, name: "first")
        #expect(await eventually { workspace.text("first.err").contains("retry") || !first.isRunning })
        // The pause is kept just after the retry is reported.
        try await Task.sleep(for: .milliseconds(500))
        await workspace.killHard(first)
        let status = try workspace.launch(["store", "status", "store"], name: "status")
        guard await workspace.finish(status) else { return }
        #expect(status.terminationStatus == 0, "\(workspace.text("status.err"))")
        let expected = """
            store store: 1 segment file, <size> on disk
              tenant default: 6 messages waiting (<size>), the oldest accepted <age> ago; paused by Retry-After \
            until <time> (<age> from now)
              input: accepted through line 3 of in.jsonl (byte 669); send --store store with that input resumes \
            after it

            """
        #expect(Self.masked(workspace.text("status.out")) == expected)
    }
}
