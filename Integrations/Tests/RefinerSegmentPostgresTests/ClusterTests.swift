import Foundation
import NIOConcurrencyHelpers
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import RefinerSegmentTesting
import Testing

/// Three instances as three processes of the drill, sharing one database and one Segment stand-in.
@Suite(.serialized, .enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct ClusterTests {
    static let tenants = 20

    /// Enqueues `units` units (two messages each) per tenant with three processes at once; returns messages/s.
    static func enqueue(url: String, schema: String, units: Int, run: ClusterRun) async throws -> Double {
        let share = (units + 2) / 3
        let start = ContinuousClock.now
        let processes = try (0..<3).map { index in
            try run.track(
                DrillProcess([
                    "enqueue", url, schema, "tenants=\(tenants)", "units=\(min(share, units - index * share))",
                    "first=\(index * share)", "channel=\(schema)",
                ]))
        }
        for process in processes {
            let status = await process.wait()
            #expect(status == 0, "\(process.errorText)\n\(run.progress)")
        }
        let elapsed = ContinuousClock.now - start
        let rate = Double(tenants * units * 2) / seconds(elapsed)
        run.note("enqueued \(tenants * units * 2) messages with 3 processes: \(Int(rate)) messages/s")
        return rate
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func deliverArguments(url: String, schema: String, endpoint: URL, owner: String, leaseMs: Int) -> [String] {
        [
            "deliver", url, schema, "endpoint=\(endpoint.absoluteString)", "owner=\(owner)", "leaseMs=\(leaseMs)",
            "channel=\(schema)", "untilEmpty=1",
        ]
    }

    /// The claims the processes reported: sequence -> (owner, claimed at, lease until), in claim order.
    static func claims(_ processes: [DrillProcess]) -> [Int64: [(owner: String, at: Double, until: Double)]] {
        var claims: [Int64: [(owner: String, at: Double, until: Double)]] = [:]
        for process in processes {
            for event in process.events where event["e"] as? String == "claimed" {
                let owner = event["owner"] as? String ?? ""
                let at = event["at"] as? Double ?? 0
                let until = event["until"] as? Double ?? 0
                for sequence in event["seqs"] as? [Int64] ?? [] {
                    claims[sequence, default: []].append((owner, at, until))
                }
            }
        }
        return claims.mapValues { $0.sorted { $0.at < $1.at } }
    }

    static func delivered(by process: DrillProcess) -> Set<Int64> {
        var sequences: Set<Int64> = []
        for event in process.events where event["e"] as? String == "delivered" {
            sequences.formUnion(event["seqs"] as? [Int64] ?? [])
        }
        return sequences
    }

    /// Kills every process still running when a cluster test passes its bound: a hung instance fails the test,
    /// with what happened until then, instead of hanging it.
    static let bound = Duration.seconds(180)
    /// The drain's bound: with the whole integrations suite running at once on a loaded 2-core machine (load
    /// average 20), three debug drills had delivered 156,000 of the 200,000 messages when 180 s passed; like
    /// `bound`, it only catches a hung instance, it is not a speed requirement.
    static let drainBound = Duration.seconds(360)

    @Test func threeInstancesDrainTwentyTenantsWhileOneIsKilled() async throws {
        let url = try #require(TestDatabase.url)
        let run = ClusterRun()
        try await run.bounded(by: Self.drainBound) {
            try await TestDatabase.withSchema { client, schema in
                try await Self.drainWhileOneIsKilled(url: url, schema: schema, client: client, run: run)
            }
        }
    }

    static func drainWhileOneIsKilled(url: String, schema: String, client: PostgresClient, run: ClusterRun)
        async throws
    {
        let units = 5000  // 20 tenants x 5,000 units x 2 messages = 200,000 messages
        let enqueueRate = try await enqueue(url: url, schema: schema, units: units, run: run)
        #expect(try await TestDatabase.count("refiner_segment_outbox", client) == tenants * units * 2, run.comment)

        // Answers take 20 ms, so the killed instance surely has batches in flight when it dies.
        let standIn = try SegmentStandIn { _, _ in .delay(.milliseconds(20), then: .status(200, body: "{}")) }
        defer { standIn.server.stop() }
        let leaseMs = 3000
        let start = ContinuousClock.now
        let victim = try run.track(
            DrillProcess(
                deliverArguments(
                    url: url, schema: schema, endpoint: standIn.server.baseURL, owner: "victim", leaseMs: leaseMs)
            ) { event, process in
                // Killed right after it reports its tenth claim, before that batch's answer can come back.
                if event["e"] as? String == "claimed",
                    process.events.filter({ $0["e"] as? String == "claimed" }).count == 10
                {
                    process.kill()
                }
            })
        let survivors = try ["first", "second"].map { owner in
            try run.track(
                DrillProcess(
                    deliverArguments(
                        url: url, schema: schema, endpoint: standIn.server.baseURL, owner: owner, leaseMs: leaseMs)
                ))
        }
        let victimStatus = await victim.wait()
        #expect(victimStatus != 0, run.comment)
        // A settle the victim sent just before it died still commits on the server; look at what it held only
        // once its sessions are gone, or a batch it did deliver would look held and never claimed again.
        try await Self.waitUntilSessionsEnd(named: schema + " victim", client: client)
        // What the victim held when it died: the rows up to its claim mark on the tenants it still holds (their
        // sender lease, the lease of what it claimed, has seconds left).
        var held: [Int64: Date] = [:]
        let rows = try await client.query(
            """
            SELECT o.sequence, t.sender_until
            FROM refiner_segment_tenants AS t JOIN refiner_segment_outbox AS o ON o.tenant = t.tenant
            WHERE t.sender_owner = 'victim' AND o.sequence <= t.claimed_through
            """
        )
        for try await (sequence, until) in rows.decode((Int64, Date).self) { held[sequence] = until }
        run.note("victim exited (status \(victimStatus)) holding \(held.count) leased messages")
        for (owner, survivor) in zip(["first", "second"], survivors) {
            let status = await survivor.wait()
            run.note("\(owner) exited (status \(status)), \(delivered(by: survivor).count) messages delivered")
            #expect(status == 0, "\(survivor.errorText)\n\(run.progress)")
        }
        let deliverRate = Double(tenants * units * 2) / seconds(ContinuousClock.now - start)
        run.note("delivered at \(Int(deliverRate)) messages/s (answers delayed 20 ms), enqueued at \(Int(enqueueRate))")

        // Every message delivered, each under its own messageId and with its own body.
        let accepted = standIn.acceptedMessages()
        run.note("read back \(accepted.count) accepted messages")
        var ids: Set<String> = []
        var mismatched = 0
        for (writeKey, messageID, message) in accepted {
            let tenant = String(writeKey.dropFirst("wk-".count))
            let index = (message["traits"] as? [String: Any])?["refiner_n"] as? Int ?? -1
            let kind = message["type"] as? String ?? ""
            if messageID != "\(tenant)-\(index)-\(kind)" { mismatched += 1 }
            ids.insert(messageID)
        }
        #expect(mismatched == 0, "messages whose body is not their messageId's\n\(run.progress)")
        var expected: Set<String> = []
        for tenant in 0..<tenants {
            for index in 0..<units {
                for kind in ["identify", "group"] {
                    expected.insert(String(format: "tenant-%02d", tenant) + "-\(index)-\(kind)")
                }
            }
        }
        #expect(
            ids == expected,
            "\(expected.subtracting(ids).count) missing, \(ids.subtracting(expected).count) unexpected\n\(run.progress)"
        )
        #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0, run.comment)
        #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == 0, run.comment)

        // No sequence claimed by two instances within a lease: a claim by another owner comes only after every
        // earlier claim's lease ended. Both times are the server's (`at` the claim's now(), `until` the tenant
        // lease it set), so the instances' clocks play no part; a renewal only moves a lease's end later than
        // the `until` reported, so this check is, if anything, lenient.
        let claims = claims([victim] + survivors)
        var overlaps: [String] = []
        for (sequence, list) in claims.sorted(by: { $0.key < $1.key }) {
            for (index, later) in list.enumerated() {
                if let earlier = list[..<index].first(where: { $0.owner != later.owner && later.at < $0.until }) {
                    overlaps.append(
                        "\(sequence): \(earlier.owner) at \(earlier.at) until \(earlier.until), "
                            + "\(later.owner) at \(later.at)")
                    break
                }
            }
        }
        #expect(
            overlaps.isEmpty,
            "\(overlaps.count) sequences claimed within another owner's lease, first \(overlaps.prefix(3))\n\(run.progress)"
        )

        // The victim's unsettled batches were claimed again by the others, after its lease.
        #expect(!held.isEmpty, "the victim died with no batch in flight\n\(run.progress)")
        var neverAgain = 0
        var early = 0
        for (sequence, until) in held {
            guard let next = claims[sequence]?.first(where: { $0.owner != "victim" }) else {
                neverAgain += 1
                continue
            }
            if next.at < until.timeIntervalSince1970 * 1000 - 1 { early += 1 }
        }
        #expect(neverAgain == 0, "of the victim's messages, \(neverAgain) were never claimed again\n\(run.progress)")
        #expect(early == 0, "of the victim's messages, \(early) were claimed again within its lease\n\(run.progress)")
    }

    /// Waits until the server has no session with the application name `name` (a drill's schema and owner).
    static func waitUntilSessionsEnd(named name: String, client: PostgresClient) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let rows = try await client.query(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = \(name)")
            var sessions = 0
            for try await (count) in rows.decode(Int.self) { sessions = count }
            if sessions == 0 { return }
            try #require(ContinuousClock.now < deadline, "\(sessions) sessions of '\(name)' outlived it by 30 s")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func aRetryAfterPausesOneTenantOnEveryInstance() async throws {
        let url = try #require(TestDatabase.url)
        let run = ClusterRun()
        try await run.bounded(by: Self.bound) {
            try await TestDatabase.withSchema { client, schema in
                try await Self.pauseOneTenant(url: url, schema: schema, client: client, run: run)
            }
        }
    }

    /// The acceptance as written: a `Retry-After: 30` for one tenant stops that tenant's requests from all three
    /// instances for 30 s (within the 180 s bound), and its messages go out once the pause is over.
    static func pauseOneTenant(url: String, schema: String, client: PostgresClient, run: ClusterRun) async throws {
        let units = 300
        _ = try await Self.enqueue(url: url, schema: schema, units: units, run: run)
        // tenant-07's first request is answered 429 with Retry-After: 30.
        let standIn = try SegmentStandIn { writeKey, earlier in
            writeKey == "wk-tenant-07" && earlier == 0
                ? .status(429, headerFields: ["Retry-After": "30"], body: "slow down")
                : .status(200, body: "{}")
        }
        defer { standIn.server.stop() }
        let processes = try ["one", "two", "three"].map { owner in
            try run.track(
                DrillProcess(
                    Self.deliverArguments(
                        url: url, schema: schema, endpoint: standIn.server.baseURL, owner: owner, leaseMs: 30_000)
                ))
        }
        for process in processes {
            let status = await process.wait()
            run.note("an instance exited (status \(status))")
            #expect(status == 0, "\(process.errorText)\n\(run.progress)")
        }
        let rows = try await client.query(
            "SELECT paused_until FROM refiner_segment_tenants WHERE tenant = 'tenant-07'"
        )
        var pausedUntil: Date?
        for try await (until) in rows.decode(Date?.self) { pausedUntil = until }
        let pauseEnd = try #require(pausedUntil, run.comment)
        let slow = standIn.arrivals(of: "wk-tenant-07")
        let refusal = try #require(slow.first, run.comment)
        #expect(refusal.status == 429)
        #expect(pauseEnd.timeIntervalSince(refusal.at) >= 29.9, run.comment)
        // No instance sent tenant-07 anything for 30 s after the refusal, nor before the stored pause ended...
        let during = slow.dropFirst().filter { $0.at.timeIntervalSince(refusal.at) < 30 || $0.at < pauseEnd }
        #expect(during.isEmpty, "\(during.count) requests of tenant-07 during its pause\n\(run.progress)")
        // ...nor claimed a batch of it (the claims in the database's time, of every instance).
        let claimsOfSlow = processes.flatMap { process in
            process.events.filter { $0["e"] as? String == "claimed" && $0["tenant"] as? String == "tenant-07" }
                .map { (owner: $0["owner"] as? String ?? "", at: $0["at"] as? Double ?? 0) }
        }.sorted { $0.at < $1.at }
        let early = claimsOfSlow.dropFirst().filter { $0.at < pauseEnd.timeIntervalSince1970 * 1000 - 1 }
        #expect(early.isEmpty, "claims of tenant-07 within its pause: \(early)\n\(run.progress)")
        // Afterwards it was delivered, and soon: a sleeping worker wakes when the pause ends.
        let resumed = try #require(slow.dropFirst().first, "tenant-07 never sent again\n\(run.progress)")
        #expect(resumed.status == 200)
        #expect(resumed.at.timeIntervalSince(pauseEnd) < 15, run.comment)
        // The others were not held back: they were sent during the pause (unless all were done before it).
        let others = (0..<Self.tenants).filter { $0 != 7 }
            .flatMap { standIn.arrivals(of: String(format: "wk-tenant-%02d", $0)) }
        #expect(
            others.contains { $0.at >= refusal.at && $0.at < pauseEnd } || others.allSatisfy { $0.at < refusal.at })
        let ids = Set(standIn.acceptedMessages().map(\.messageID))
        #expect(ids.count == Self.tenants * units * 2, run.comment)
    }

    /// The throughput figure of Docs/Performance.md: three instances enqueue 200,000 messages of 20 tenants, then
    /// three deliver them to a stand-in that answers at once. Run only when REFINER_SEGMENT_POSTGRES_BENCHMARK is
    /// set, with the release drill in REFINER_SEGMENT_POSTGRES_DRILL; prints the figures (a benchmark, not a test
    /// of speed: nothing here fails for being slow).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["REFINER_SEGMENT_POSTGRES_BENCHMARK"] != nil))
    func throughputOfThreeInstances() async throws {
        let url = try #require(TestDatabase.url)
        let run = ClusterRun()
        try await run.bounded(by: Self.bound) {
            try await TestDatabase.withSchema { client, schema in
                let units = 5000
                let messages = Self.tenants * units * 2
                let enqueueRate = try await Self.enqueue(url: url, schema: schema, units: units, run: run)
                let standIn = try SegmentStandIn { _, _ in .status(200, body: "{}") }
                defer { standIn.server.stop() }
                let start = Date()
                let processes = try ["one", "two", "three"].map { owner in
                    try run.track(
                        DrillProcess(
                            Self.deliverArguments(
                                url: url, schema: schema, endpoint: standIn.server.baseURL, owner: owner,
                                leaseMs: 30_000)))
                }
                for process in processes {
                    let status = await process.wait()
                    #expect(status == 0, "\(process.errorText)\n\(run.progress)")
                }
                // Until the last request arrived: the drills' look for an empty outbox at the end is not delivery.
                let last = try #require(standIn.lastArrival)
                let deliverRate = Double(messages) / last.timeIntervalSince(start)
                #expect(Set(standIn.acceptedMessages().map(\.messageID)).count == messages, run.comment)
                print(
                    "PostgreSQL outbox, three instances, \(messages) messages of \(Self.tenants) tenants: "
                        + "enqueue \(Int(enqueueRate)) messages/s, deliver \(Int(deliverRate)) messages/s"
                )
            }
        }
    }
}

/// What a cluster test saw, with the time since it started: shown with a failed expectation only (a passing test
/// prints nothing), and a bound on the test's processes that kills them, so a hung instance fails the test
/// instead of hanging it.
final class ClusterRun: Sendable {
    private let start = ContinuousClock.now
    private let state = NIOLockedValueBox<(lines: [String], processes: [DrillProcess], expired: Bool)>(
        ([], [], false))

    /// Notes a step.
    func note(_ text: String) {
        let elapsed = ClusterTests.seconds(ContinuousClock.now - start)
        state.withLockedValue { $0.lines.append(String(format: "[%6.1f s] ", elapsed) + text) }
    }

    /// Keeps a process to kill should the bound pass; kills it at once if the bound has passed.
    func track(_ process: DrillProcess) -> DrillProcess {
        let expired = state.withLockedValue { state in
            state.processes.append(process)
            return state.expired
        }
        note("started \(process.name)")
        if expired {
            Issue.record("\(process.name) started after the cluster test's bound\n\(progress)")
            process.kill()
        }
        return process
    }

    /// The steps so far.
    var progress: String { "progress:\n" + state.withLockedValue { $0.lines.joined(separator: "\n") } }

    /// The steps so far, as an expectation's comment.
    var comment: Comment { Comment(rawValue: progress) }

    /// Runs `body`; if a process it started still runs `bound` after the start, or one starts later, records an
    /// issue with the progress and kills it, so that `body`'s waits return and its expectations fail. What `body`
    /// checks once its processes are done is not bounded (it has nothing left to hang on, and on a loaded machine
    /// reading 200,000 messages back takes a while).
    func bounded(by bound: Duration, _ body: @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                guard (try? await Task.sleep(for: bound)) != nil else { return }
                let running = self.state.withLockedValue { state in
                    state.expired = true
                    return state.processes.filter { !$0.hasExited }
                }
                guard !running.isEmpty else {
                    self.note("the bound of \(bound) passed with every process done")
                    return
                }
                self.note("the bound of \(bound) passed: killing \(running.map(\.name))")
                Issue.record("the cluster test's processes ran longer than \(bound)\n\(self.progress)")
                for process in running { process.kill() }
            }
            try await body()
            group.cancelAll()
        }
    }
}
