import Foundation
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
    static func enqueue(url: String, schema: String, units: Int) async throws -> Double {
        let share = (units + 2) / 3
        let processes = try (0..<3).map { index in
            try DrillProcess([
                "enqueue", url, schema, "tenants=\(tenants)", "units=\(min(share, units - index * share))",
                "first=\(index * share)", "channel=\(schema)",
            ])
        }
        let start = ContinuousClock.now
        for process in processes {
            let status = await process.wait()
            #expect(status == 0, "\(process.errorText)")
        }
        let elapsed = ContinuousClock.now - start
        return Double(tenants * units * 2) / seconds(elapsed)
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

    @Test func threeInstancesDrainTwentyTenantsWhileOneIsKilled() async throws {
        let url = try #require(TestDatabase.url)
        try await TestDatabase.withSchema { client, schema in
            let units = 5000  // 20 tenants x 5,000 units x 2 messages = 200,000 messages
            let enqueueRate = try await Self.enqueue(url: url, schema: schema, units: units)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == Self.tenants * units * 2)

            // Answers take 20 ms, so the killed instance surely has batches in flight when it dies.
            let standIn = try SegmentStandIn { _, _ in .delay(.milliseconds(20), then: .status(200, body: "{}")) }
            defer { standIn.server.stop() }
            let leaseMs = 3000
            let start = ContinuousClock.now
            let victim = try DrillProcess(
                Self.deliverArguments(
                    url: url, schema: schema, endpoint: standIn.server.baseURL, owner: "victim", leaseMs: leaseMs)
            ) { event, process in
                // Killed right after it reports its tenth claim, before that batch's answer can come back.
                if event["e"] as? String == "claimed",
                    process.events.filter({ $0["e"] as? String == "claimed" }).count == 10
                {
                    process.kill()
                }
            }
            let survivors = try ["first", "second"].map { owner in
                try DrillProcess(
                    Self.deliverArguments(
                        url: url, schema: schema, endpoint: standIn.server.baseURL, owner: owner, leaseMs: leaseMs)
                )
            }
            let victimStatus = await victim.wait()
            #expect(victimStatus != 0)
            // What the victim held when it died: rows still leased to it (its lease has seconds left).
            var held: [Int64: Date] = [:]
            let rows = try await client.query(
                "SELECT sequence, lease_until FROM refiner_segment_outbox WHERE lease_owner = 'victim'"
            )
            for try await (sequence, until) in rows.decode((Int64, Date).self) { held[sequence] = until }
            for survivor in survivors {
                let status = await survivor.wait()
                #expect(status == 0, "\(survivor.errorText)")
            }
            let deliverRate = Double(Self.tenants * units * 2) / Self.seconds(ContinuousClock.now - start)
            print(
                "PostgreSQL outbox, three instances, one killed: enqueue \(Int(enqueueRate)) messages/s, deliver \(Int(deliverRate)) messages/s (answers delayed 20 ms)"
            )

            // Every message delivered, each under its own messageId and with its own body.
            let accepted = standIn.acceptedMessages()
            var ids: Set<String> = []
            for (writeKey, messageID, message) in accepted {
                let tenant = String(writeKey.dropFirst("wk-".count))
                let index = (message["traits"] as? [String: Any])?["refiner_n"] as? Int ?? -1
                let kind = message["type"] as? String ?? ""
                #expect(messageID == "\(tenant)-\(index)-\(kind)")
                ids.insert(messageID)
            }
            var expected: Set<String> = []
            for tenant in 0..<Self.tenants {
                for index in 0..<units {
                    for kind in ["identify", "group"] {
                        expected.insert(String(format: "tenant-%02d", tenant) + "-\(index)-\(kind)")
                    }
                }
            }
            #expect(ids == expected)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == 0)

            // No sequence claimed by two instances within a lease: a second claim by another owner comes only
            // after the first claim's lease ended.
            let claims = Self.claims([victim] + survivors)
            var overlapping = 0
            for (_, list) in claims {
                for (earlier, later) in zip(list, list.dropFirst()) where earlier.owner != later.owner {
                    if later.at < earlier.until { overlapping += 1 }
                }
            }
            #expect(overlapping == 0)

            // The victim's unsettled batches were claimed again by the others, after its lease.
            #expect(!held.isEmpty, "the victim died with no batch in flight")
            for (sequence, until) in held {
                let next = claims[sequence]?.first { $0.owner != "victim" }
                #expect(next != nil, "sequence \(sequence) was never claimed again")
                #expect((next?.at ?? 0) >= until.timeIntervalSince1970 * 1000 - 1)
            }
        }
    }

    @Test func aRetryAfterPausesOneTenantOnEveryInstance() async throws {
        let url = try #require(TestDatabase.url)
        try await TestDatabase.withSchema { client, schema in
            let units = 300
            _ = try await Self.enqueue(url: url, schema: schema, units: units)
            // tenant-07's first request is answered 429 with Retry-After: 3 (the spec's 30 s, shortened).
            let standIn = try SegmentStandIn { writeKey, earlier in
                writeKey == "wk-tenant-07" && earlier == 0
                    ? .status(429, headerFields: ["Retry-After": "3"], body: "slow down")
                    : .status(200, body: "{}")
            }
            defer { standIn.server.stop() }
            let processes = try ["one", "two", "three"].map { owner in
                try DrillProcess(
                    Self.deliverArguments(
                        url: url, schema: schema, endpoint: standIn.server.baseURL, owner: owner, leaseMs: 30_000)
                )
            }
            for process in processes {
                let status = await process.wait()
                #expect(status == 0, "\(process.errorText)")
            }
            let rows = try await client.query(
                "SELECT paused_until FROM refiner_segment_tenants WHERE tenant = 'tenant-07'"
            )
            var pausedUntil: Date?
            for try await (until) in rows.decode(Date?.self) { pausedUntil = until }
            let pauseEnd = try #require(pausedUntil)
            let slow = standIn.arrivals(of: "wk-tenant-07")
            let refusal = try #require(slow.first)
            #expect(refusal.status == 429)
            #expect(pauseEnd.timeIntervalSince(refusal.at) >= 2.9)
            // No instance sent tenant-07 anything during the pause; afterwards it was delivered.
            #expect(slow.dropFirst().allSatisfy { $0.at >= pauseEnd })
            #expect(slow.count >= 2)
            // The others were not held back: they were sent during the pause (unless all were done before it).
            let others = (0..<Self.tenants).filter { $0 != 7 }
                .flatMap { standIn.arrivals(of: String(format: "wk-tenant-%02d", $0)) }
            #expect(
                others.contains { $0.at >= refusal.at && $0.at < pauseEnd } || others.allSatisfy { $0.at < refusal.at })
            let ids = Set(standIn.acceptedMessages().map(\.messageID))
            #expect(ids.count == Self.tenants * units * 2)
        }
    }
}
