import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentFileStore
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `send --store DIR` on the built executable where an audit found it lost or repeated messages: the failed
/// file re-sent in place, an append that fails, a drain of the store, a batch the store takes only part of,
/// pretty-printed input.
@Suite(.serialized) struct SendStoreEdgeTests {
    typealias Workspace = SendStoreTests.Workspace
    static let enabled = SendStoreTests.enabled
    static let missing = SendStoreTests.missing

    // MARK: The failed file in place

    /// In place, the failures of a run go to a fresh file that replaces the failed file only at the end,
    /// while the store settles them at once: a stop in between lost them, and the re-run (resuming past
    /// their lines) never read them again. `--store` with the failed file as input is refused.
    @Test(.enabled(if: enabled, missing))
    func theFailedFileInPlaceWithAStoreIsRefusedAndLeftAsItWas() async throws {
        let workspace = try Workspace(count: 0, tag: "inplace")
        defer { workspace.remove() }
        let name = RefinerSegmentTool.defaultFailedFileName
        let original = try builtMessages(10, tag: "inplace")
        try Data(original.utf8).write(to: workspace.url(name))
        chmod(workspace.path(name), 0o600)
        let refusing = try LoopbackHTTPServer { _ in .status(400, body: #"{"error":"bad"}"#) }
        defer { refusing.stop() }
        let run = try workspace.launch(
            ["send", "--endpoint", refusing.baseURL.absoluteString, "--store", "store", name], name: "run")
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("--store cannot re-send the failed file '\(name)' in place"), "\(stderr)")
        #expect(refusing.requests.isEmpty, "nothing is sent")
        #expect(workspace.text(name) == original)
        #expect(!FileManager.default.fileExists(atPath: workspace.path("store")), "the store is not made")
    }

    /// The same with `--tenants`: a tenant's failed file as the input, with a store.
    @Test(.enabled(if: enabled, missing))
    func aTenantsFailedFileInPlaceWithAStoreIsRefused() async throws {
        let workspace = try Workspace(count: 0, tag: "tinplace")
        defer { workspace.remove() }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        try Data(#"{"acme": {"writeKey": "wk_acme", "endpoint": "\#(server.baseURL)"}}"#.utf8)
            .write(to: workspace.url("tenants.json"))
        let name = "refiner-segment-failed.acme.jsonl"
        let original = try builtMessages(4, tag: "tinplace")
        try Data(original.utf8).write(to: workspace.url(name))
        chmod(workspace.path(name), 0o600)
        let run = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--tenant", "acme", "--store", "store", name], name: "run")
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("--store cannot re-send the failed file '\(name)' in place"), "\(stderr)")
        #expect(server.requests.isEmpty, "nothing is sent")
        #expect(workspace.text(name) == original)
    }
}

extension SendStoreEdgeTests {
    // MARK: An append that fails

    /// A store that cannot append (a full disk, an I/O error; here the test hook
    /// `REFINER_SEGMENT_TEST_FAIL_APPEND=2`) is not the input's fault: the unit was skipped and the next
    /// append's cursor passed its line, so the re-run never sent it. Now reading stops there, the run says
    /// why and exits 1, and the re-run sends the rest: every message once.
    @Test(.enabled(if: enabled, missing))
    func aFailedAppendStopsReadingAndTheRerunSendsTheRestOnce() async throws {
        let workspace = try Workspace(count: 600, tag: "eio")
        defer { workspace.remove() }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let arguments = [
            "send", "--endpoint", server.baseURL.absoluteString, "--store", "store", "--failed", "failed.jsonl",
            "in.jsonl",
        ]
        let first = try workspace.launch(
            arguments, name: "first", environment: ["REFINER_SEGMENT_TEST_FAIL_APPEND": "2"])
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("Input/output error (test hook)"), "\(stderr)")
        #expect(!stderr.contains("skipped"), "a unit the store could not take is not the input's fault: \(stderr)")
        let rerun = try workspace.launch(arguments, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let rerunErr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(rerunErr)")
        #expect(SendInput.ids(acceptedBy: server).sorted() == workspace.expected.sorted(), "\(stderr)\n\(rerunErr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.jsonl")))
    }

    /// From a pipe (which cannot be read again) the units the store could not take go to the failed file.
    @Test(.enabled(if: enabled, missing))
    func aFailedAppendFromAPipeKeepsItsUnitsInTheFailedFile() async throws {
        // 250 responses fit a pipe's buffer: written and closed before the run reads them, read in one batch.
        let workspace = try Workspace(count: 250, tag: "eiopipe")
        defer { workspace.remove() }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let input = Pipe()
        input.fileHandleForWriting.write(try Data(contentsOf: workspace.url("in.jsonl")))
        try input.fileHandleForWriting.close()
        let run = try workspace.launch(
            ["send", "--endpoint", server.baseURL.absoluteString, "--store", "store", "--failed", "failed.jsonl"],
            name: "run", environment: ["REFINER_SEGMENT_TEST_FAIL_APPEND": "1"], input: input.fileHandleForReading)
        try input.fileHandleForReading.close()
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("Input/output error (test hook)"), "\(stderr)")
        #expect(!stderr.contains("skipped"), "\(stderr)")
        let failed = try #require(try? Data(contentsOf: workspace.url("failed.jsonl")), "\(stderr)")
        let kept = try SendInput.ids(inFailedFile: [UInt8](failed))
        let delivered = SendInput.ids(acceptedBy: server)
        #expect(Set(delivered).isDisjoint(with: kept))
        #expect((delivered + kept).sorted() == workspace.expected.sorted(), "\(stderr)")
    }
}

extension SendStoreEdgeTests {
    // MARK: Draining the store

    /// Fills `store` with the workspace's messages: a run against a server that holds every request, killed
    /// once its cursor passed the input's last line (nothing is delivered; everything stays in the store).
    static func fillStore(_ workspace: Workspace, lines: Int) async throws {
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        let first = try workspace.launch(
            [
                "send", "--endpoint", stalling.baseURL.absoluteString, "--store", "store", "--failed",
                "failed.jsonl", "in.jsonl",
            ], name: "fill")
        #expect(
            await eventually {
                workspace.text("store/input-cursor.json").contains(#""line":\#(lines)"#) || !first.isRunning
            })
        await workspace.killHard(first)
    }

    /// `send --store DIR /dev/null` while the server answers 503: the messages DIR holds cannot be delivered,
    /// so the run must not end with 0 (it ended after the 1 s grace with status 0 and everything left in DIR).
    /// It retries until stopped; stopped, it says what stays in DIR.
    @Test(.enabled(if: enabled, missing))
    func aDrainOfTheStoreThatCannotDeliverDoesNotExitZero() async throws {
        let workspace = try Workspace(count: 40, tag: "drain503")
        defer { workspace.remove() }
        try await Self.fillStore(workspace, lines: 40)
        let unavailable = try LoopbackHTTPServer { _ in .status(503) }
        defer { unavailable.stop() }
        let drain = try workspace.launch(
            ["send", "--endpoint", unavailable.baseURL.absoluteString, "--store", "store", "/dev/null"], name: "drain")
        // Well past the grace period: it has either ended (not with 0) or is still retrying.
        _ = await eventually(within: .seconds(5)) { !drain.isRunning }
        if drain.isRunning { kill(drain.processIdentifier, SIGINT) }
        guard await workspace.finish(drain) else { return }
        let stderr = workspace.text("drain.err")
        #expect(drain.terminationStatus != 0, "\(stderr)")
        #expect(stderr.contains("80 messages left in store"), "\(stderr)")
        #expect(SendInput.ids(acceptedBy: unavailable).isEmpty)
    }

    /// `send --store DIR /dev/null` into a slow server delivers everything DIR held before it ends with 0:
    /// its flush came before the pipeline had recovered what DIR held, so only the 1 s grace was left.
    @Test(.enabled(if: enabled, missing))
    func aDrainOfTheStoreDeliversEverythingItHeld() async throws {
        let workspace = try Workspace(count: 2000, tag: "drain")
        defer { workspace.remove() }
        try await Self.fillStore(workspace, lines: 2000)
        // A batch takes up to 2,500 messages or 500 KB: 4,000 messages are at least two requests, 3 s or more.
        let slow = try LoopbackHTTPServer { _ in .delay(.milliseconds(1500), then: .status(200, body: "{}")) }
        defer { slow.stop() }
        let drain = try workspace.launch(
            ["send", "--endpoint", slow.baseURL.absoluteString, "--store", "store", "/dev/null"], name: "drain")
        guard await workspace.finish(drain) else { return }
        let stderr = workspace.text("drain.err")
        #expect(drain.terminationStatus == 0, "\(stderr)")
        #expect(Set(SendInput.ids(acceptedBy: slow)) == Set(workspace.expected), "\(stderr)")
        #expect(!stderr.contains("left in store"), "\(stderr)")
    }
}

extension SendStoreEdgeTests {
    // MARK: A batch the store takes part of

    /// `count` responses of about 1 KB a line (a long answer), so that a batch of 256 units spans four
    /// 64 KiB chunks of input.
    static func largeResponses(_ count: Int, tag: String) -> String {
        let answer = String(repeating: "x", count: 900)
        return (0..<count).map { index in
            #"{"id": "\#(tag)-\#(index)", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "s"}, "#
                + #""user": {"id": "u\#(index)"}, "account": {"id": "a\#(index % 3)"}, "answers": [{"question": "#
                + #"{"id": "q1", "text": "What is your job role?"}, "value": "\#(answer)"}]}"#
        }.joined(separator: "\n") + "\n"
    }

    /// The cursor of each unit was looked up when its batch was recorded, among the line ends of the last
    /// two chunks only: the early units of a batch spanning four had none. A store at its bound that took
    /// the first units of the batch then wrote an older cursor, and the re-run after a stop recorded those
    /// units again (sent and counted twice). Each unit's cursor is now taken when it is read.
    @Test(.enabled(if: enabled, missing))
    func aBatchTheStoreTakesPartOfIsNotRecordedAgainByTheRerun() async throws {
        let count = 300
        let workspace = try Workspace(count: 0, tag: "partial")
        defer { workspace.remove() }
        try Data(Self.largeResponses(count, tag: "partial").utf8).write(to: workspace.url("in.jsonl"))
        let expected = SendInput.expectedIDs(count, tag: "partial")
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        // 96 KiB takes about 60 units of the first batch of 256; the rest waits for room.
        let bound = 96 * 1024
        let arguments = ["--store", "store", "--failed", "failed.jsonl", "in.jsonl"]
        let first = try workspace.launch(
            ["send", "--endpoint", stalling.baseURL.absoluteString] + arguments, name: "first",
            environment: ["REFINER_SEGMENT_TEST_STORE_MAX_BYTES": "\(bound)"])
        let storeBytes = {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: workspace.path("store"))) ?? []
            return names.filter { $0.hasPrefix("segment-") }.reduce(0) { total, name in
                total
                    + ((try? FileManager.default.attributesOfItem(atPath: workspace.path("store/\(name)")))?[.size]
                        as? Int ?? 0)
            }
        }
        #expect(await eventually { (storeBytes() > bound / 2 && !stalling.requests.isEmpty) || !first.isRunning })
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let firstErr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(firstErr)")
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let rerun = try workspace.launch(
            ["send", "--endpoint", healthy.baseURL.absoluteString] + arguments, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("resumes the run that stopped after line"), "\(stderr)")
        // Every message exactly once at the server, and the summary counts each once.
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == expected.sorted(), "\(firstErr)\n\(stderr)")
        #expect(stderr.contains("\(count) of \(count) lines read"), "\(stderr)")
        #expect(stderr.contains("\(2 * count) delivered, 0 failed"), "\(stderr)")
    }
}

extension SendStoreEdgeTests {
    // MARK: Pretty-printed input

    /// Built messages pretty-printed (`render | jq .`) are read as documents; a unit of them that failed
    /// was written to the failed file as it was read, over several lines (`[{` then `  "type": ...`), which
    /// no reader takes back. The failed file holds one JSON value a line, and re-sending it delivers all.
    @Test(.enabled(if: enabled, missing), arguments: [false, true])
    func prettyPrintedMessagesThatFailAreOneLineEachInTheFailedFile(withStore: Bool) async throws {
        let workspace = try Workspace(count: 0, tag: "pretty")
        defer { workspace.remove() }
        let lines = try builtMessages(5, tag: "pretty").split(separator: "\n")
        var pretty = ""
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted])
            pretty += String(decoding: data, as: UTF8.self) + "\n"
        }
        try Data(pretty.utf8).write(to: workspace.url("pretty.json"))
        let expected = SendInput.expectedIDs(5, tag: "pretty")
        let refusing = try LoopbackHTTPServer { _ in .status(400, body: #"{"error":"bad"}"#) }
        defer { refusing.stop() }
        let store = withStore ? ["--store", "store"] : []
        let run = try workspace.launch(
            ["send", "--endpoint", refusing.baseURL.absoluteString, "--failed", "failed.jsonl"] + store
                + ["pretty.json"], name: "run")
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("10 failed"), "\(stderr)")
        let failed = workspace.text("failed.jsonl")
        for line in failed.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil,
                "not a JSON value on its own line: \(line)")
        }
        #expect(try SendInput.ids(inFailedFile: Array(failed.utf8)).sorted() == expected.sorted(), "\(failed)")
        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        let resend = try workspace.launch(
            ["send", "--endpoint", healthy.baseURL.absoluteString, "--failed", "again.jsonl", "failed.jsonl"],
            name: "resend")
        guard await workspace.finish(resend) else { return }
        #expect(resend.terminationStatus == 0, "\(workspace.text("resend.err"))")
        #expect(SendInput.ids(acceptedBy: healthy).sorted() == expected.sorted(), "\(workspace.text("resend.err"))")
    }
}

extension SendStoreEdgeTests {
    /// The same with `--tenants`: the second append of the window (globex's units) fails. Its first unit
    /// was skipped and the next append's cursor passed it; now reading stops, and the re-run sends every
    /// tenant's messages once.
    @Test(.enabled(if: enabled, missing))
    func aFailedAppendWithTenantsStopsReadingAndTheRerunSendsTheRestOnce() async throws {
        let workspace = try Workspace(count: 0, tag: "teio")
        defer { workspace.remove() }
        try Data(SendTenantsStoreTests.input().utf8).write(to: workspace.url("in.jsonl"))
        let servers = try SendTenantsStoreTests.serveEveryTenant(in: workspace)
        defer { for server in servers { server.stop() } }
        let first = try SendTenantsStoreTests.send(
            workspace, name: "first", environment: ["REFINER_SEGMENT_TEST_FAIL_APPEND": "2"])
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("Input/output error (test hook)"), "\(stderr)")
        #expect(!stderr.contains("skipped"), "\(stderr)")
        let rerun = try SendTenantsStoreTests.send(workspace, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let rerunErr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(rerunErr)")
        for (tenant, server) in zip(SendTenantsStoreTests.tenants, servers) {
            #expect(
                SendInput.ids(acceptedBy: server).sorted() == SendTenantsStoreTests.expected(tenant),
                "\(tenant): \(stderr)\n\(rerunErr)")
        }
    }
}

extension SendStoreEdgeTests {
    /// `send --tenants FILE --store DIR /dev/null`, the drain with many workspaces, into a slow server:
    /// everything DIR held for the tenant is delivered before the run ends with 0.
    @Test(.enabled(if: enabled, missing))
    func aDrainOfTheStoreWithTenantsDeliversEverythingItHeld() async throws {
        let count = 2000
        let workspace = try Workspace(count: 0, tag: "tdrain")
        defer { workspace.remove() }
        let lines = (0..<count).map { SendTenantsTests.response("t\($0)", tenant: "acme") }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: workspace.url("in.jsonl"))
        let expected = (0..<count).flatMap { ["refiner-t\($0)-identify", "refiner-t\($0)-group"] }
        let stalling = try LoopbackHTTPServer { _ in .hold }
        defer { stalling.stop() }
        try SendTenantsStoreTests.writeTenants([("acme", stalling)], in: workspace)
        let fill = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--store", "store", "--failed", "failed.jsonl", "in.jsonl"],
            name: "fill")
        #expect(
            await eventually {
                workspace.text("store/input-cursor.json").contains(#""line":\#(count)"#) || !fill.isRunning
            })
        await workspace.killHard(fill)
        let slow = try LoopbackHTTPServer { _ in .delay(.milliseconds(1500), then: .status(200, body: "{}")) }
        defer { slow.stop() }
        try SendTenantsStoreTests.writeTenants([("acme", slow)], in: workspace)
        let drain = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--store", "store", "--failed", "failed.jsonl", "/dev/null"],
            name: "drain")
        guard await workspace.finish(drain) else { return }
        let stderr = workspace.text("drain.err")
        #expect(drain.terminationStatus == 0, "\(stderr)")
        #expect(Set(SendInput.ids(acceptedBy: slow)) == Set(expected), "\(stderr)")
    }
}
