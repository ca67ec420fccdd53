import Foundation
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import RefinerSegmentTesting
import Testing

/// The outbox through the core's `SegmentMessageStore` protocol, as a pipeline drives it: what the in-memory and
/// file stores' tests check (whole units from the front, released claims first, settlements, tenants apart, a
/// pipeline that delivers everything), and what only a store shared by several instances must do (one holder per
/// tenant, leases, a pause every instance honours).
@Suite(.enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct MessageStoreConformanceTests {
    static let room = 1 << 20

    static func claim(
        _ store: some SegmentMessageStore, _ tenant: String = "acme", messages: Int = 100,
        lease: Duration = .seconds(30)
    )
        async throws -> SegmentClaim?
    {
        try await store.claim(tenant: tenant, maximumMessages: messages, maximumBytes: room, lease: lease)
    }

    @Test func claimsComeFromTheFrontWithWholeUnits() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema)
            let units = [TestDatabase.unit("a"), TestDatabase.unit("b", count: 3), TestDatabase.unit("c")]
            #expect(try await store.append(units, tenant: "acme") == 3)
            // Six messages allowed: unit c would be cut, so it waits for the next claim.
            let first = try #require(try await Self.claim(store, messages: 6))
            #expect(first.messages.map(\.messageID) == ["a-0", "a-1", "b-0", "b-1", "b-2"])
            #expect(first.unitEnds == [2, 5])
            #expect(first.tenant == "acme")
            #expect(first.retryState == SegmentRetryState())
            let second = try #require(try await Self.claim(store, messages: 6))
            #expect(second.messages.map(\.messageID) == ["c-0", "c-1"])
            #expect(second.id != first.id)
            #expect(try await Self.claim(store) == nil)
        }
    }

    @Test func aUnitOverTheByteBoundStillGoesAloneAtTheHead() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema)
            _ = try await store.append(
                [TestDatabase.unit("a", padding: 1000), TestDatabase.unit("b", padding: 1000)], tenant: "acme")
            let first = try #require(
                try await store.claim(tenant: "acme", maximumMessages: 100, maximumBytes: 100, lease: .seconds(30)))
            #expect(first.messages.map(\.messageID) == ["a-0", "a-1"])
        }
    }

    @Test func settlementsDeleteFailAndKeepTheRetryScheduleForTheNextHolder() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema, owner: "pipeline")
            let other = TestDatabase.outbox(client, schema, owner: "other")
            let units = [TestDatabase.unit("a"), TestDatabase.unit("b", count: 1), TestDatabase.unit("c")]
            #expect(try await store.append(units, tenant: "acme") == 3)
            let claim = try #require(try await Self.claim(store))
            #expect(claim.unitEnds == [2, 3, 5])
            // One active sender per tenant: another instance's pipeline gets nothing while this one holds it.
            #expect(try await Self.claim(other) == nil)
            try await store.settle(claim, messages: 0..<2, as: .delivered)
            try await store.settle(claim, messages: 2..<3, as: .failed("HTTP 400: bad"))
            let firstFailure = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 5).rounded())
            try await store.settle(
                claim, messages: 3..<5,
                as: .retry(
                    SegmentRetryState(
                        failures: 1, retryCount: 1, firstFailure: firstFailure,
                        nextAttempt: Date().addingTimeInterval(1))
                ))
            #expect(try await Self.claim(other) == nil, "a retry keeps the claim with its holder")
            try await store.release(claim)
            let dead = try await client.query("SELECT message_id, reason FROM refiner_segment_dead_letters")
            var deadLetters: [String: String] = [:]
            for try await (id, reason) in dead.decode((String, String).self) { deadLetters[id] = reason }
            #expect(deadLetters == ["b-0": "HTTP 400: bad"])
            let usage = try await store.usage(tenant: "acme")
            #expect(usage.messages == 2)
            #expect(usage.claimableMessages == 2)
            // Released: any instance may take the rest, with its retry state.
            let again = try #require(try await Self.claim(other))
            #expect(again.messages.map(\.messageID) == ["c-0", "c-1"])
            #expect(again.retryState.failures == 1)
            #expect(again.retryState.retryCount == 1)
            #expect(again.retryState.firstFailure == firstFailure)
            try await other.settle(again, messages: 0..<2, as: .delivered)
            #expect(try await store.usage(tenant: "acme") == SegmentStoreUsage())
            #expect(try await store.handBack(tenant: "acme").isEmpty, "a durable store keeps, never hands back")
        }
    }

    @Test func releasedClaimsComeBackFirstInAcceptedOrderWithoutWhatWasSettled() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema)
            _ = try await store.append(
                [TestDatabase.unit("a"), TestDatabase.unit("b"), TestDatabase.unit("c")], tenant: "acme")
            // Two claims in flight from one instance (a pipeline with two batches in flight).
            let first = try #require(try await Self.claim(store, messages: 4))
            let second = try #require(try await Self.claim(store, messages: 4))
            #expect(second.messages.map(\.messageID) == ["c-0", "c-1"])
            try await store.settle(first, messages: 0..<2, as: .delivered)
            try await store.release(second)
            try await store.release(first)
            let back = try #require(try await Self.claim(store))
            #expect(back.messages.map(\.messageID) == ["b-0", "b-1", "c-0", "c-1"])
            #expect(back.unitEnds == [2, 4])
        }
    }

    @Test func usageCountsWhatThisInstanceMayClaimNow() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema, owner: "pipeline")
            let other = TestDatabase.outbox(client, schema, owner: "other")
            let units = [TestDatabase.unit("a"), TestDatabase.unit("b")]
            _ = try await store.append(units, tenant: "acme")
            let bytes = units[1].reduce(0) { $0 + $1.byteCount }
            let before = try await other.usage(tenant: "acme")
            #expect(before.messages == 4)
            #expect(before.claimableMessages == 4)
            #expect(before.storedBytes == bytes * 2)
            #expect(before.claimableBytes == bytes * 2 + 4)
            let oldest = try #require(before.oldestAppended)
            #expect(abs(oldest.timeIntervalSinceNow) < 60)
            _ = try #require(try await Self.claim(store, messages: 2))
            let holder = try await store.usage(tenant: "acme")
            #expect(holder.messages == 4)
            #expect(holder.claimableMessages == 2)
            #expect(holder.claimableBytes == bytes + 2)
            // Another instance may claim nothing while the tenant is held: its pipeline waits instead of polling.
            let outsider = try await other.usage(tenant: "acme")
            #expect(outsider.messages == 4)
            #expect(outsider.claimableMessages == 0)
            #expect(outsider.claimableBytes == 0)
            #expect(try await other.usage(tenant: "nobody") == SegmentStoreUsage())
        }
    }

    @Test func aClaimWhoseLeasePassedIsClaimedAgainByAnotherInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            let killed = TestDatabase.outbox(client, schema, owner: "killed")
            let survivor = TestDatabase.outbox(client, schema, owner: "survivor")
            _ = try await killed.append([TestDatabase.unit("a")], tenant: "acme")
            // A lease of zero has passed as soon as the claim is taken: the holder is as good as dead.
            let lost = try #require(try await Self.claim(killed, lease: .zero))
            let taken = try #require(try await Self.claim(survivor))
            #expect(taken.messages.map(\.messageID) == lost.messages.map(\.messageID))
            // The dead holder's late settlement is still a fact (delivered is delivered), and harmless.
            try await killed.settle(lost, messages: 0..<2, as: .delivered)
            try await survivor.settle(taken, messages: 0..<2, as: .delivered)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
        }
    }

    @Test func recoverFreesWhatAnEarlierRunOfTheSameInstanceHeld() async throws {
        try await TestDatabase.withSchema { client, schema in
            let earlier = TestDatabase.outbox(client, schema, owner: "instance-1")
            let other = TestDatabase.outbox(client, schema, owner: "instance-2")
            _ = try await earlier.append([TestDatabase.unit("a"), TestDatabase.unit("b")], tenant: "acme")
            _ = try #require(try await Self.claim(earlier, messages: 2, lease: .seconds(300)))
            // The same instance restarted (same owner name, a fresh store value): its old claim is freed at once.
            let restarted = TestDatabase.outbox(client, schema, owner: "instance-1")
            let recovery = try await restarted.recover(tenant: "acme")
            #expect(recovery.messages == 4)
            #expect(recovery.pausedUntil == nil)
            #expect(recovery.damage.isEmpty)
            let claim = try #require(try await Self.claim(restarted))
            #expect(claim.messages.map(\.messageID) == ["a-0", "a-1", "b-0", "b-1"])
            // Another instance's recover frees nothing of it.
            #expect(try await other.recover(tenant: "acme").messages == 0)
            #expect(try await Self.claim(other) == nil)
        }
    }

    @Test func tenantsAreApart() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema)
            _ = try await store.append([TestDatabase.unit("a")], tenant: "one")
            _ = try await store.append([TestDatabase.unit("b")], tenant: "two")
            try await store.setPause(until: Date().addingTimeInterval(60), tenant: "one")
            #expect(try await Self.claim(store, "one") == nil, "paused")
            #expect(try await store.usage(tenant: "one").pausedUntil != nil)
            #expect(try await store.usage(tenant: "two").pausedUntil == nil)
            let two = try #require(try await Self.claim(store, "two"))
            #expect(two.messages.map(\.messageID) == ["b-0", "b-1"])
            try await store.setPause(until: nil, tenant: "one")
            let one = try #require(try await Self.claim(store, "one"))
            #expect(one.messages.map(\.messageID) == ["a-0", "a-1"])
        }
    }

    /// Review doubt: `setPause(until: nil)` wrote NULL whatever was stored, so an instance whose short pause
    /// ended cleared another instance's longer one, and a shorter pause replaced a longer one.
    @Test func aPauseIsOnlyExtendedNeverShortenedByAnotherInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            let long = TestDatabase.outbox(client, schema, owner: "long")
            let short = TestDatabase.outbox(client, schema, owner: "short")
            _ = try await long.append([TestDatabase.unit("a")], tenant: "acme")
            let end = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 60).rounded())
            try await long.setPause(until: end, tenant: "acme")
            try await short.setPause(until: Date().addingTimeInterval(1), tenant: "acme")
            #expect(try await short.usage(tenant: "acme").pausedUntil == end, "a shorter pause keeps the longer one")
            try await short.setPause(until: nil, tenant: "acme")
            #expect(try await short.usage(tenant: "acme").pausedUntil == end, "a clear of another pause keeps it")
            #expect(try await Self.claim(short) == nil)
            // The instance that set it may clear it (its pipeline waited it out).
            try await long.setPause(until: nil, tenant: "acme")
            #expect(try await short.usage(tenant: "acme").pausedUntil == nil)
            #expect(try await Self.claim(short) != nil)
        }
    }

    @Test func aPipelineOnTheOutboxDeliversEverythingInOrderAndLeavesNothingBehind() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema)
            let transport = RecordingTransport()
            var configuration = SegmentPipeline.Configuration()
            configuration.linger = .zero
            configuration.batch.maximumMessages = 7  // several batches, cut between units
            let units = (0..<20).map { TestDatabase.unit("r\($0)") }
            let counters = try await SegmentPipeline.withPipeline(
                writeKey: WriteKey("wk_pg"), transport: transport, configuration: configuration, store: store,
                tenant: "acme"
            ) { pipeline in
                try await pipeline.record(contentsOf: units)
                await pipeline.flush()
                return await pipeline.counters
            }
            #expect(counters.delivered == 40)
            #expect(counters.failed == 0)
            var sent: [String] = []
            for request in await transport.requests {
                let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
                let batch = try #require(body["batch"] as? [[String: Any]])
                #expect(batch.count <= 7)
                sent += batch.compactMap { $0["messageId"] as? String }
            }
            #expect(sent == units.flatMap { $0.map(\.messageID) })
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            // The tenant is handed back: any instance may send its next messages.
            let rows = try await client.query("SELECT sender_owner FROM refiner_segment_tenants WHERE tenant = 'acme'")
            for try await (owner) in rows.decode(String?.self) { #expect(owner == nil) }
        }
    }

    @Test func aRetryAfterFromOneInstancesPipelinePausesTheTenantForEveryInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store = TestDatabase.outbox(client, schema, owner: "pipeline")
            let other = TestDatabase.outbox(client, schema, owner: "other")
            // Virtual time for the pipeline's waits, the real wall clock for the pause it stores.
            let clock = VirtualClock(mode: .manual)
            let transport = ScriptedTransport(
                [.status(429, headerFields: ["Retry-After": "30"], body: "slow down")], clock: clock)
            var configuration = SegmentPipeline.Configuration()
            configuration.linger = .zero
            configuration.shutdownGracePeriod = .zero
            let pauseEnd = try await SegmentPipeline.withPipeline(
                writeKey: WriteKey("wk_pg"), transport: transport, configuration: configuration, store: store,
                tenant: "acme", clock: clock, wallClock: { Date() }
            ) { pipeline in
                try await pipeline.record(TestDatabase.unit("a"))
                async let flushed: Void = pipeline.flush()
                await clock.waitForSleepers(1)  // the pipeline waits out the pause
                let seen = try await other.usage(tenant: "acme")
                #expect(seen.claimableMessages == 0)
                let end = try #require(seen.pausedUntil)
                #expect(end.timeIntervalSinceNow > 25 && end.timeIntervalSinceNow <= 31)
                #expect(try await Self.claim(other) == nil)
                clock.advance(by: .seconds(30))
                await flushed
                return end
            }
            #expect(await transport.requests.count == 2)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            #expect(pauseEnd.timeIntervalSinceNow > 0, "the pause was stored with the wall clock's end")
            #expect(try await store.usage(tenant: "acme").pausedUntil == nil, "cleared once the pipeline waited it out")
        }
    }
}
