import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `send --tenants FILE --store DIR` on the built executable: three tenants share one store; a run killed
/// with SIGKILL just after an append is finished by its re-run with every message of each tenant once, and
/// a store holding a tenant the file no longer names is refused naming it, with nothing deleted. An input
/// whose tenants interleave is stored a window at a time, one append for each tenant, and its cursor names
/// the lines stored past its line.
@Suite(.serialized) struct SendTenantsStoreTests {
    static let tenants = ["acme", "globex", "down"]
    /// Responses per tenant in the input.
    static let perTenant = 10

    /// The input: each tenant's responses in turn (`acme`, `globex`, `down`, `acme`, ...), one a line.
    static func input() -> String {
        var lines: [String] = []
        for index in 1...perTenant {
            for tenant in tenants {
                lines.append(SendTenantsTests.response("\(tenant.prefix(1))\(index)", tenant: tenant))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The input with each tenant's responses together: all of `acme`'s, then `globex`'s, then `down`'s.
    static func groupedInput() -> String {
        var lines: [String] = []
        for tenant in tenants {
            for index in 1...perTenant {
                lines.append(SendTenantsTests.response("\(tenant.prefix(1))\(index)", tenant: tenant))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A tenant's messageIds in an input of `count` responses for it, sorted.
    static func expected(_ tenant: String, count: Int = perTenant) -> [String] {
        (1...count).flatMap { index in
            ["identify", "group"].map { "refiner-\(tenant.prefix(1))\(index)-\($0)" }
        }.sorted()
    }

    /// Writes `tenants.json` naming `servers` (tenant to server) into the workspace.
    static func writeTenants(_ servers: [(String, LoopbackHTTPServer)], in workspace: SendStoreTests.Workspace)
        throws
    {
        let entries = servers.map { tenant, server in
            #""\#(tenant)": {"writeKey": "\#(SendTenantsTests.keys[tenant]!)", "endpoint": "\#(server.baseURL)"}"#
        }
        try Data(("{" + entries.joined(separator: ", ") + "}").utf8).write(to: workspace.url("tenants.json"))
    }

    /// Starts a server for every tenant, answering through `handler` (200 by default), and names them in
    /// `tenants.json`; the caller stops them.
    static func serveEveryTenant(
        in workspace: SendStoreTests.Workspace,
        handler: (@Sendable (LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Answer)? = nil
    ) throws -> [LoopbackHTTPServer] {
        let servers = try tenants.map { _ in
            try handler.map { try LoopbackHTTPServer(handler: $0) } ?? LoopbackHTTPServer()
        }
        try writeTenants(Array(zip(tenants, servers)), in: workspace)
        return servers
    }

    static func send(_ workspace: SendStoreTests.Workspace, name: String, environment: [String: String] = [:]) throws
        -> Process
    {
        try workspace.launch(
            [
                "send", "--tenants", "tenants.json", "--store", "store", "--failed", "failed.jsonl",
                "--max-retry-duration", "1", "in.jsonl",
            ], name: name, environment: environment)
    }

    /// A re-run with healthy servers after a kill that left acme's and globex's 20 messages each in the store,
    /// and down's lines not stored: it sends what the store holds, records down's lines only, and every
    /// message reaches its tenant's server once.
    static func expectRerunFinishesWithAcmeAndGlobexHeld(_ workspace: SendStoreTests.Workspace) async {
        guard let healthy = try? Self.serveEveryTenant(in: workspace),
            let rerun = try? Self.send(workspace, name: "rerun")
        else {
            Issue.record("could not start the servers or the re-run")
            return
        }
        defer { for server in healthy { server.stop() } }
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 0, "\(stderr)")
        for (tenant, server) in zip(Self.tenants, healthy) {
            #expect(SendInput.ids(acceptedBy: server).sorted() == Self.expected(tenant), "\(tenant): \(stderr)")
        }
        #expect(stderr.contains("store holds 40 messages from an earlier run (acme 20, globex 20)"), "\(stderr)")
        #expect(
            stderr.contains("acme: 0 messages (and 20 held in store from an earlier run): 20 delivered"), "\(stderr)")
        #expect(stderr.contains("down: 20 messages: 20 delivered, 0 failed"), "\(stderr)")
        #expect(stderr.contains("30 of 30 lines read, 20 messages for 3 tenants: 60 delivered, 0 failed"), "\(stderr)")
        #expect(stderr.contains("20 lines accepted by an earlier run were not sent again"), "\(stderr)")
    }

    /// No tenant's write key, nor its Basic credentials, nor a 10-character piece of either, in `texts`.
    static func expectNoKey(in texts: [(String, String)]) {
        let forbidden = SecretsTests.forbiddenPieces(of: Array(SendTenantsTests.keys.values))
        for (what, text) in texts {
            if let piece = forbidden.first(where: { text.contains($0) }) {
                Issue.record("\(what) shows a tenant's write key ('\(piece)'): \(text.prefix(2000))")
            }
        }
    }

    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func aKilledRunIsFinishedByItsRerunWithEachTenantsMessagesOnceAndAnUnnamedTenantIsRefused() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants")
        defer { workspace.remove() }
        try Data(Self.input().utf8).write(to: workspace.url("in.jsonl"))
        // First run: servers that never answer; killed right after its second append. The 30 lines are one
        // window: acme's ten units are the first append, globex's the second, so the store holds both
        // tenants' units (where an append a change of tenant held two units), and the cursor is line 2 (down's
        // line 3 is not stored) with acme's and globex's 18 later lines.
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        let first = try Self.send(
            workspace, name: "first", environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "2"])
        guard await workspace.finish(first) else { return }
        #expect(first.terminationReason == .uncaughtSignal && first.terminationStatus == SIGKILL)

        // What the store holds, per tenant.
        let status = try workspace.launch(["store", "status", "store"], name: "status")
        guard await workspace.finish(status) else { return }
        let held = workspace.text("status.out")
        #expect(status.terminationStatus == 0, "\(workspace.text("status.err"))")
        #expect(held.contains("tenant acme: 20 messages waiting"), "\(held)")
        #expect(held.contains("tenant globex: 20 messages waiting"), "\(held)")
        #expect(!held.contains("tenant down"), "\(held)")
        #expect(held.contains("accepted through line 2 of in.jsonl and 18 lines after it"), "\(held)")

        // A tenants file without `globex`: refused, naming it; nothing sent, nothing deleted.
        let healthy = try (0..<2).map { _ in try LoopbackHTTPServer() }
        let down = try LoopbackHTTPServer { _ in .respond(SegmentResponse(statusCode: 503)) }
        defer {
            for server in healthy { server.stop() }
            down.stop()
        }
        try Self.writeTenants([("acme", healthy[0]), ("down", down)], in: workspace)
        let refused = try Self.send(workspace, name: "refused")
        guard await workspace.finish(refused) else { return }
        let refusal = workspace.text("refused.err")
        #expect(refused.terminationStatus == 1, "\(refusal)")
        #expect(refusal.contains("holds messages of tenants that the --tenants file does not name"), "\(refusal)")
        #expect(refusal.contains("20 of tenant 'globex'"), "\(refusal)")
        #expect(refusal.contains("nothing was sent or deleted"), "\(refusal)")
        #expect(healthy.allSatisfy { $0.requests.isEmpty } && down.requests.isEmpty)

        // The re-run with all three (down now answering 503): it sends what the store holds first, reads the
        // input skipping the 20 lines stored, and the down tenant's messages end in its failed file.
        try Self.writeTenants([("acme", healthy[0]), ("globex", healthy[1]), ("down", down)], in: workspace)
        let rerun = try Self.send(workspace, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        let stderr = workspace.text("rerun.err")
        #expect(rerun.terminationStatus == 1, "\(stderr)")  // the down tenant's messages failed
        #expect(SendInput.ids(acceptedBy: healthy[0]).sorted() == Self.expected("acme"), "\(stderr)")
        #expect(SendInput.ids(acceptedBy: healthy[1]).sorted() == Self.expected("globex"), "\(stderr)")
        let failed = try #require(try? Data(contentsOf: workspace.url("failed.down.jsonl")), "\(stderr)")
        #expect(try SendInput.ids(inFailedFile: [UInt8](failed)).sorted() == Self.expected("down"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.acme.jsonl")))
        // The summaries count each message once: read now, or held from the killed run.
        #expect(stderr.contains("store holds 40 messages from an earlier run (acme 20, globex 20)"), "\(stderr)")
        #expect(
            stderr.contains("acme: 0 messages (and 20 held in store from an earlier run): 20 delivered, 0 failed"),
            "\(stderr)")
        #expect(
            stderr.contains("globex: 0 messages (and 20 held in store from an earlier run): 20 delivered, 0 failed"),
            "\(stderr)")
        #expect(stderr.contains("down: 20 messages: 0 delivered, 20 failed"), "\(stderr)")
        #expect(stderr.contains("30 of 30 lines read, 20 messages for 3 tenants: 40 delivered, 20 failed"), "\(stderr)")
        #expect(stderr.contains("20 lines accepted by an earlier run were not sent again"), "\(stderr)")

        // The job is done: the store is empty and its cursor cleared.
        let after = try workspace.launch(["store", "status", "store"], name: "after")
        guard await workspace.finish(after) else { return }
        #expect(!workspace.text("after.out").contains("messages waiting"), "\(workspace.text("after.out"))")
        #expect(!workspace.text("after.out").contains("accepted through"), "\(workspace.text("after.out"))")

        var texts: [(String, String)] = []
        for name in ["first", "status", "refused", "rerun", "after"] {
            for stream in ["out", "err"] { texts.append(("\(name).\(stream)", workspace.text("\(name).\(stream)"))) }
        }
        texts.append(("failed.down.jsonl", String(decoding: failed, as: UTF8.self)))
        Self.expectNoKey(in: texts)
    }

    /// Consecutive units of one tenant go in one append with one cursor: killed after its second append
    /// (acme's ten lines, then globex's), the re-run sends what the store holds, reads down's lines only,
    /// and every message reaches its tenant's server once.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func aKilledRunOfATenantByTenantInputIsFinishedWithEachMessageOnce() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-grouped")
        defer { workspace.remove() }
        try Data(Self.groupedInput().utf8).write(to: workspace.url("in.jsonl"))
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        let first = try Self.send(
            workspace, name: "first", environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "2"])
        guard await workspace.finish(first) else { return }
        #expect(first.terminationReason == .uncaughtSignal && first.terminationStatus == SIGKILL)
        await Self.expectRerunFinishesWithAcmeAndGlobexHeld(workspace)
    }

    /// The lines a cursor names past its line outlive a second kill: killed after acme's append (cursor: line
    /// 1 and acme's 9 later lines), then its re-run killed after globex's (line 2, and 18 lines: globex's and
    /// the acme lines the first run stored), the third run records only down's lines, and every message
    /// reaches its tenant's server once.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func twoKilledRunsOfAnInterleavedInputAreFinishedWithEachMessageOnce() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-interleaved")
        defer { workspace.remove() }
        try Data(Self.input().utf8).write(to: workspace.url("in.jsonl"))
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        for (run, through) in [
            ("first", "line 1 of in.jsonl and 9 lines after it"),
            ("second", "line 2 of in.jsonl and 18 lines after it"),
        ] {
            let killed = try Self.send(
                workspace, name: run, environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "1"])
            guard await workspace.finish(killed) else { return }
            #expect(killed.terminationReason == .uncaughtSignal && killed.terminationStatus == SIGKILL)
            let status = try workspace.launch(["store", "status", "store"], name: "\(run)-status")
            guard await workspace.finish(status) else { return }
            let held = workspace.text("\(run)-status.out")
            #expect(held.contains("accepted through \(through)"), "\(run): \(held)")
        }
        await Self.expectRerunFinishesWithAcmeAndGlobexHeld(workspace)
    }

    /// Kills at random appends (a seed; RELIABILITY_SEED repeats one), most of them between two tenants'
    /// appends of a window, over a longer interleaved input: the last run ends with every message of each
    /// tenant delivered once by messageId, the store empty and its cursor gone.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func killsAtRandomAppendsOfAnInterleavedInputEndWithEachMessageOnce() async throws {
        let seed = SeededGenerator.seed()
        var random = SeededGenerator(seed: seed)
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-random")
        defer { workspace.remove() }
        let count = 400
        var lines: [String] = []
        for index in 1...count {
            for tenant in Self.tenants {
                lines.append(SendTenantsTests.response("\(tenant.prefix(1))\(index)", tenant: tenant))
            }
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: workspace.url("in.jsonl"))
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        var kills = 0
        for round in 0..<6 {
            let appends = Int.random(in: 1...5, using: &random)
            let run = try Self.send(
                workspace, name: "run-\(round)", environment: ["REFINER_SEGMENT_TEST_KILL_AFTER_APPENDS": "\(appends)"])
            // A run that read the rest of the input in fewer appends waits on the holding servers: it is
            // killed (by the test, at a moment of its own), and the input is all in the store.
            guard await eventually(within: .seconds(5), { !run.isRunning }) else {
                await workspace.killHard(run)
                kills += 1
                break
            }
            #expect(run.terminationReason == .uncaughtSignal, "seed \(seed): \(workspace.text("run-\(round).err"))")
            kills += 1
        }
        let healthy = try Self.serveEveryTenant(in: workspace)
        defer { for server in healthy { server.stop() } }
        let last = try Self.send(workspace, name: "last")
        guard await workspace.finish(last) else { return }
        let stderr = workspace.text("last.err")
        #expect(last.terminationStatus == 0, "seed \(seed): \(stderr)")
        #expect(kills > 0, "seed \(seed): no run was cut short")
        for (tenant, server) in zip(Self.tenants, healthy) {
            let expected = (1...count).flatMap { index in
                ["identify", "group"].map { "refiner-\(tenant.prefix(1))\(index)-\($0)" }
            }.sorted()
            let delivered = SendInput.ids(acceptedBy: server).sorted()
            #expect(delivered.count == expected.count, "seed \(seed), \(tenant): \(delivered.count) deliveries")
            #expect(delivered == expected, "seed \(seed), \(tenant): not each message once")
        }
        #expect(!FileManager.default.fileExists(atPath: workspace.path("store/input-cursor.json")), "seed \(seed)")
    }

    /// From a pipe, what each tenant's pipeline read and the full store never accepted when a stop signal
    /// came goes to that tenant's failed file (a pipe cannot be read again); with what the re-run sends from
    /// the store, every message of each tenant once.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func aStopWhileTheStoreIsFullKeepsWhatAPipeGaveInEachTenantsFailedFile() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-pipefull")
        defer { workspace.remove() }
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        // 30 lines fit the pipe's buffer: written and closed before the run reads them all at once.
        let input = Pipe()
        input.fileHandleForWriting.write(Data(Self.input().utf8))
        try input.fileHandleForWriting.close()
        let first = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--store", "store", "--failed", "failed.jsonl"], name: "first",
            environment: ["REFINER_SEGMENT_TEST_STORE_MAX_BYTES": "8192"], input: input.fileHandleForReading)
        try input.fileHandleForReading.close()
        // A request is held once the first append is in: the units it did not take wait for room (and should
        // the signal come sooner, all of them are unaccepted: the checks below hold either way).
        #expect(await eventually { holding.contains { !$0.requests.isEmpty } || !first.isRunning })
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("read but not queued"), "\(stderr)")
        var kept: [String: [String]] = [:]
        for tenant in Self.tenants {
            let file = (try? Data(contentsOf: workspace.url("failed.\(tenant).jsonl"))).map { [UInt8]($0) } ?? []
            kept[tenant] = try SendInput.ids(inFailedFile: file)
        }
        #expect(kept.values.contains { !$0.isEmpty }, "\(stderr)")
        let healthy = try Self.serveEveryTenant(in: workspace)
        defer { for server in healthy { server.stop() } }
        let rerun = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--store", "store", "--failed", "rerun.jsonl"], name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "\(workspace.text("rerun.err"))")
        for (tenant, server) in zip(Self.tenants, healthy) {
            let delivered = SendInput.ids(acceptedBy: server)
            #expect(Set(delivered).isDisjoint(with: kept[tenant] ?? []), "\(tenant): in the store and the failed file")
            #expect((delivered + (kept[tenant] ?? [])).sorted() == Self.expected(tenant), "\(tenant): \(stderr)")
        }
    }

    /// A stop signal leaves what is undelivered in the store, said per tenant in the summary, not in the
    /// failed files; the re-run delivers it all.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func aStopSignalLeavesEachTenantsUndeliveredMessagesInTheStore() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-signal")
        defer { workspace.remove() }
        try Data(Self.input().utf8).write(to: workspace.url("in.jsonl"))
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        let first = try Self.send(workspace, name: "first")
        #expect(
            await eventually {
                workspace.text("store/input-cursor.json").contains(#""line":30"#) || !first.isRunning
            })
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("undelivered messages stay in store"), "\(stderr)")
        for tenant in Self.tenants {
            #expect(stderr.contains("\(tenant): 20 messages: 0 delivered"), "\(stderr)")
        }
        #expect(stderr.components(separatedBy: "20 messages left in store").count == 4, "\(stderr)")
        for tenant in Self.tenants {
            #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.\(tenant).jsonl")))
        }
        let healthy = try Self.serveEveryTenant(in: workspace)
        defer { for server in healthy { server.stop() } }
        let rerun = try Self.send(workspace, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "\(workspace.text("rerun.err"))")
        for (tenant, server) in zip(Self.tenants, healthy) {
            #expect(SendInput.ids(acceptedBy: server).sorted() == Self.expected(tenant), "\(tenant)")
        }
    }

    /// A tenant that is down does not hold up the others: `down`'s 14,000 messages (more than a pipeline's
    /// default queue of 10,000 and a batch in flight) come first in the input, and acme's and globex's after
    /// them still reach their servers while down's first batch is retried (no retry limit: when a tenant's
    /// queue was the pipeline's default, reading waited for room in down's for as long as it retried). Its
    /// backlog waits in the store with `--store`, in memory without. Stopped, the run leaves down's messages
    /// in the store (and the re-run delivers each once), or writes them to down's failed file.
    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing), arguments: [true, false])
    func aTenantThatIsDownDoesNotHoldUpTheOthersLinesBehindItsBacklog(withStore: Bool) async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-backlog")
        defer { workspace.remove() }
        let (backlog, others) = (7_000, 50)
        var lines = (1...backlog).map { SendTenantsTests.response("d\($0)", tenant: "down") }
        for index in 1...others {
            for tenant in ["acme", "globex"] {
                lines.append(SendTenantsTests.response("\(tenant.prefix(1))\(index)", tenant: tenant))
            }
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: workspace.url("in.jsonl"))
        let servers = try ["acme", "globex"].map { _ in try LoopbackHTTPServer() }
        let down = try LoopbackHTTPServer { _ in .respond(SegmentResponse(statusCode: 503)) }
        defer {
            for server in servers { server.stop() }
            down.stop()
        }
        try Self.writeTenants([("acme", servers[0]), ("globex", servers[1]), ("down", down)], in: workspace)
        let arguments =
            ["send", "--tenants", "tenants.json"] + (withStore ? ["--store", "store"] : [])
            + ["--failed", "failed.jsonl", "in.jsonl"]
        let first = try workspace.launch(arguments, name: "first")
        let delivered = await eventually(within: .seconds(60)) {
            !first.isRunning
                || (SendInput.ids(acceptedBy: servers[0]).count == 2 * others
                    && SendInput.ids(acceptedBy: servers[1]).count == 2 * others)
        }
        #expect(delivered && first.isRunning, "acme's and globex's lines waited behind down's backlog")
        #expect(!down.requests.isEmpty, "down was not even tried")
        kill(first.processIdentifier, SIGINT)
        guard await workspace.finish(first) else { return }
        let stderr = workspace.text("first.err")
        #expect(first.terminationStatus == 130, "\(stderr)")
        #expect(SendInput.ids(acceptedBy: servers[0]).sorted() == Self.expected("acme", count: others), "\(stderr)")
        #expect(SendInput.ids(acceptedBy: servers[1]).sorted() == Self.expected("globex", count: others), "\(stderr)")
        #expect(stderr.contains("down: \(2 * backlog) messages: 0 delivered"), "\(stderr)")
        guard withStore else {
            let failed = try #require(try? Data(contentsOf: workspace.url("failed.down.jsonl")), "\(stderr)")
            #expect(try SendInput.ids(inFailedFile: [UInt8](failed)).sorted() == Self.expected("down", count: backlog))
            return
        }
        #expect(stderr.contains("\(2 * backlog) messages left in store"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.path("failed.down.jsonl")))

        let healthy = try LoopbackHTTPServer()
        defer { healthy.stop() }
        try Self.writeTenants([("acme", servers[0]), ("globex", servers[1]), ("down", healthy)], in: workspace)
        let rerun = try workspace.launch(arguments, name: "rerun")
        guard await workspace.finish(rerun) else { return }
        #expect(rerun.terminationStatus == 0, "\(workspace.text("rerun.err"))")
        let downIDs = SendInput.ids(acceptedBy: healthy)
        #expect(downIDs.count == 2 * backlog && downIDs.sorted() == Self.expected("down", count: backlog))
        #expect(SendInput.ids(acceptedBy: servers[0]).count == 2 * others, "acme's were sent again")
    }

    @Test(.enabled(if: SendStoreTests.enabled, SendStoreTests.missing))
    func aSecondSendTenantsOnTheSameStoreIsRefusedNamingTheFirst() async throws {
        let workspace = try SendStoreTests.Workspace(count: 0, tag: "tenants-lock")
        defer { workspace.remove() }
        try Data(Self.input().utf8).write(to: workspace.url("in.jsonl"))
        let holding = try Self.serveEveryTenant(in: workspace) { _ in .hold }
        defer { for server in holding { server.stop() } }
        let first = try Self.send(workspace, name: "first")
        #expect(await eventually { holding.contains { !$0.requests.isEmpty } || !first.isRunning })
        let second = try Self.send(workspace, name: "second")
        guard await workspace.finish(second) else { return }
        await workspace.killHard(first)
        let holder = "store is in use by process \(first.processIdentifier)"
        #expect(second.terminationStatus == 1)
        #expect(workspace.text("second.err").contains(holder), "\(workspace.text("second.err"))")
        #expect(!workspace.text("second.err").contains("lines read"), "the refused run read nothing")
    }
}
