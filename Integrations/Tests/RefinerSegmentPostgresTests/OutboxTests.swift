import Foundation
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import Testing

/// The outbox's statements against a real server: claims, leases, settlements, pauses, migrations.
@Suite(.enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct OutboxTests {
    @Test func migrationsAreIdempotentAndRefuseANewerSchema() async throws {
        try await TestDatabase.withSchema { client, _ in
            let again = try await PostgresSchema.migrate(client: client, logger: TestDatabase.logger)
            #expect(again.isEmpty)
            #expect(try await PostgresSchema.version(client: client, logger: TestDatabase.logger) == 2)
            try await client.query(
                "INSERT INTO refiner_segment_schema_versions (version, summary) VALUES (99, 'from the future')"
            )
            let error = await #expect(throws: PostgresStoreError.self) {
                try await PostgresSchema.migrate(client: client, logger: TestDatabase.logger)
            }
            #expect(error?.code == .schemaTooNew)
            #expect(error?.description.contains("version 99") == true)
        }
    }

    @Test func aClaimTakesWholeUnitsOldestFirst() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await outbox.enqueue(
                [TestDatabase.unit("a"), TestDatabase.unit("b", count: 3), TestDatabase.unit("c")],
                tenant: "acme"
            )
            let lease = try #require(try await outbox.acquireTenant())
            #expect(lease.tenant == "acme")
            // Six rows are locked; unit c is cut by the limit, so it waits for the next batch.
            let first = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 6))
            #expect(first.segmentMessages.map(\.messageID) == ["a-0", "a-1", "b-0", "b-1", "b-2"])
            #expect(first.messages.allSatisfy { $0.attempts == 1 })
            #expect(
                first.messages.map(\.unit) == [first.sequences[0], first.sequences[0]]
                    + Array(repeating: first.sequences[2], count: 3))
            #expect(first.leaseUntil > first.claimedAt)
            let second = try #require(try await outbox.claimBatch(of: "acme"))
            #expect(second.segmentMessages.map(\.messageID) == ["c-0", "c-1"])
            #expect(try await outbox.claimBatch(of: "acme") == nil)
        }
    }

    /// The claim of ``PostgresOutbox/claimBatch(of:maximumMessages:maximumBytes:lease:)`` writes the tenant row
    /// only (the sender lease is the batch's lease): the message rows keep the version they were enqueued with
    /// through claims and renewals, and a batch given back comes first again, to the same holder or the next.
    @Test func aClaimWritesTheTenantRowOnly() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await outbox.enqueue(
                [TestDatabase.unit("a"), TestDatabase.unit("b"), TestDatabase.unit("c")], tenant: "acme")
            let enqueued = try await Self.rowVersions(client)
            _ = try #require(try await outbox.acquireTenant())
            let batch = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            #expect(batch.segmentMessages.map(\.messageID) == ["a-0", "a-1"])
            #expect(try await outbox.renew(batch))
            let next = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            #expect(next.segmentMessages.map(\.messageID) == ["b-0", "b-1"])
            #expect(try await Self.rowVersions(client) == enqueued)
            #expect(try await Self.claimMark(client) == next.sequences.last)
            // A retry gives the batch back to the holder itself, first once the wait ends; its attempt counts.
            try await outbox.retryLater(next, after: .seconds(60))
            #expect(try await outbox.claimBatch(of: "acme") == nil)
            try await client.query("UPDATE refiner_segment_tenants SET retry_at = now()")
            let retried = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            #expect(retried.sequences == next.sequences)
            #expect(retried.messages.allSatisfy { $0.attempts == 2 })
            // Released: the tenant goes back with what was claimed and not settled, at its front.
            try await outbox.releaseTenant("acme")
            #expect(try await Self.claimMark(client) == nil)
            _ = try #require(try await outbox.acquireTenant())
            let again = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            #expect(again.sequences == batch.sequences)
            #expect(again.messages.allSatisfy { $0.attempts == 1 })
        }
    }

    /// Each outbox row's physical place and creating transaction, in sequence order: equal when no row was written.
    static func rowVersions(_ client: PostgresClient) async throws -> [String] {
        let rows = try await client.query(
            "SELECT ctid::text || ' ' || xmin::text FROM refiner_segment_outbox ORDER BY sequence")
        var versions: [String] = []
        for try await (version) in rows.decode(String.self) { versions.append(version) }
        return versions
    }

    /// The `claimed_through` of the only tenant.
    static func claimMark(_ client: PostgresClient) async throws -> Int64? {
        let rows = try await client.query("SELECT claimed_through FROM refiner_segment_tenants")
        for try await (mark) in rows.decode(Int64?.self) { return mark }
        return nil
    }

    @Test func theByteLimitCutsBetweenUnitsButTheHeadAlwaysGoes() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await outbox.enqueue(
                [TestDatabase.unit("a", padding: 1000), TestDatabase.unit("b", padding: 1000)],
                tenant: "acme"
            )
            _ = try #require(try await outbox.acquireTenant())
            let batch = try #require(try await outbox.claimBatch(of: "acme", maximumBytes: 100))
            #expect(batch.segmentMessages.map(\.messageID) == ["a-0", "a-1"])
            let next = try #require(try await outbox.claimBatch(of: "acme", maximumBytes: 4000))
            #expect(next.segmentMessages.map(\.messageID) == ["b-0", "b-1"])
        }
    }

    @Test func aHeldTenantIsNotTakenByAnotherInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            let first = TestDatabase.outbox(client, schema, owner: "first")
            let second = TestDatabase.outbox(client, schema, owner: "second")
            try await first.enqueue([TestDatabase.unit("a")], tenant: "acme")
            try await first.enqueue([TestDatabase.unit("g")], tenant: "globex")
            let taken = try #require(try await first.acquireTenant())
            let other = try #require(try await second.acquireTenant())
            #expect(Set([taken.tenant, other.tenant]) == ["acme", "globex"])
            #expect(try await second.acquireTenant() == nil)
            // Claims need the tenant's lease: the second instance cannot claim the first one's tenant.
            #expect(try await second.claimBatch(of: taken.tenant) == nil)
            try await first.releaseTenant(taken.tenant)
            #expect(try await second.acquireTenant()?.tenant == taken.tenant)
        }
    }

    @Test func deliveredRowsAreDeletedAndFailedOnesKeptWithTheirReason() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await outbox.enqueue([TestDatabase.unit("a"), TestDatabase.unit("b")], tenant: "acme")
            _ = try #require(try await outbox.acquireTenant())
            let batch = try #require(try await outbox.claimBatch(of: "acme"))
            try await outbox.settleDelivered(Array(batch.messages.prefix(2)))
            try await outbox.deadLetter(Array(batch.messages.suffix(2)), reason: "HTTP 400: bad message")
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            let rows = try await client.query(
                "SELECT message_id, reason, attempts FROM refiner_segment_dead_letters ORDER BY sequence"
            )
            var dead: [String] = []
            for try await (id, reason, attempts) in rows.decode((String, String, Int).self) {
                #expect(reason == "HTTP 400: bad message")
                #expect(attempts == 1)
                dead.append(id)
            }
            #expect(dead == ["b-0", "b-1"])
            let usage = try await outbox.usage()
            #expect(usage.map(\.tenant) == ["acme"])
            #expect(usage.first?.messages == 0)
            #expect(usage.first?.deadLetters == 2)
        }
    }

    @Test func messagesEnqueuedInTheHostsTransactionCommitOrRollBackWithIt() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await client.query("CREATE TABLE responses (id text PRIMARY KEY)")
            struct Abandoned: Error {}
            await #expect(throws: PostgresTransactionError.self) {
                try await client.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query("INSERT INTO responses VALUES ('r1')", logger: TestDatabase.logger)
                    try await outbox.enqueue([TestDatabase.unit("r1")], tenant: "acme", on: connection)
                    throw Abandoned()
                }
            }
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            try await client.withTransaction(logger: TestDatabase.logger) { connection in
                try await connection.query("INSERT INTO responses VALUES ('r2')", logger: TestDatabase.logger)
                try await outbox.enqueue([TestDatabase.unit("r2")], tenant: "acme", on: connection)
            }
            #expect(try await TestDatabase.count("responses", client) == 1)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 2)
        }
    }

    @Test func anExpiredLeaseIsClaimedAgainByAnotherInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            // A lease no loaded machine outlives between two statements (a 300 ms one once ran out before the
            // survivor's first look, failing the test): the test ends it on the server's clock instead.
            let crashed = TestDatabase.outbox(client, schema, owner: "crashed", lease: .seconds(30))
            let survivor = TestDatabase.outbox(client, schema, owner: "survivor", lease: .seconds(30))
            try await crashed.enqueue([TestDatabase.unit("a")], tenant: "acme")
            _ = try #require(try await crashed.acquireTenant())
            let lost = try #require(try await crashed.claimBatch(of: "acme"))
            #expect(try await survivor.acquireTenant() == nil)
            // The crashed instance never settles nor renews; its lease ends (shortened to the server's now()).
            let ended = try await client.query(
                "UPDATE refiner_segment_tenants SET sender_until = now() WHERE tenant = 'acme' RETURNING sender_until")
            var leaseEnd = lost.leaseUntil
            for try await (until) in ended.decode(Date.self) { leaseEnd = until }
            #expect(leaseEnd < lost.leaseUntil)
            try await TestDatabase.waitUntilServerTime(passes: leaseEnd, client)
            _ = try #require(try await survivor.acquireTenant())
            let again = try #require(try await survivor.claimBatch(of: "acme"))
            #expect(again.sequences == lost.sequences)
            #expect(again.claimedAt >= leaseEnd)
            #expect(again.messages.allSatisfy { $0.attempts == 2 })
            #expect(try await crashed.renew(lost) == false)
        }
    }

    /// Two instances on one schema: `stalled` claimed acme's units as one batch (`lost`), its lease ended (on the
    /// server's clock, by an `UPDATE`), and `next` took the tenant; then `body`.
    static func withAStalledHolder(
        of units: [String],
        _ body: @Sendable (PostgresClient, PostgresOutbox, PostgresOutbox, OutboxBatch) async throws -> Void
    ) async throws {
        try await TestDatabase.withSchema { client, schema in
            let stalled = TestDatabase.outbox(client, schema, owner: "stalled")
            let next = TestDatabase.outbox(client, schema, owner: "next")
            try await stalled.enqueue(units.map { TestDatabase.unit($0) }, tenant: "acme")
            _ = try #require(try await stalled.acquireTenant())
            let lost = try #require(try await stalled.claimBatch(of: "acme"))
            try await client.query("UPDATE refiner_segment_tenants SET sender_until = now()")
            _ = try #require(try await next.acquireTenant())
            try await body(client, stalled, next, lost)
        }
    }

    /// A holder whose lease ran out (a stall) and whose batch then failed must not make the tenant's new holder
    /// wait: that one claimed the batch again and gets its own answer.
    @Test func aRetryOfAHolderThatLostTheTenantDoesNotHoldUpTheNewHolder() async throws {
        try await Self.withAStalledHolder(of: ["a"]) { _, stalled, next, lost in
            try await stalled.retryLater(lost, after: .seconds(60))
            #expect(try await next.usage().first?.retryAt == nil)
            let again = try #require(try await next.claimBatch(of: "acme"))
            #expect(again.sequences == lost.sequences)
        }
    }

    /// A holder whose lease ran out and whose batch then failed for good moves nothing: the new holder claimed
    /// the batch again and delivers it, so no message ends both delivered and a dead letter. The holder itself
    /// moves what it holds.
    @Test func aHolderThatLostTheTenantDeadLettersNothingOfTheNewHolders() async throws {
        try await Self.withAStalledHolder(of: ["a", "b"]) { client, stalled, next, lost in
            let again = try #require(try await next.claimBatch(of: "acme"))
            #expect(again.sequences == lost.sequences)
            #expect(try await stalled.deadLetter(lost.messages, reason: "gave up").isEmpty)
            try await next.settleDelivered(again.messages)
            #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == 0)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 0)
            // The holder's own verdict moves its messages.
            try await next.enqueue([TestDatabase.unit("c")], tenant: "acme")
            let held = try #require(try await next.claimBatch(of: "acme"))
            #expect(try await next.deadLetter(held.messages, reason: "HTTP 400").map(\.sequence) == held.sequences)
            #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == held.messages.count)
        }
    }

    @Test func aPauseHoldsTheTenantOnEveryInstanceWithoutSpendingAnAttempt() async throws {
        try await TestDatabase.withSchema { client, schema in
            let first = TestDatabase.outbox(client, schema, owner: "first")
            let second = TestDatabase.outbox(client, schema, owner: "second")
            try await first.enqueue([TestDatabase.unit("a")], tenant: "acme")
            _ = try #require(try await first.acquireTenant())
            let batch = try #require(try await first.claimBatch(of: "acme"))
            try await first.pause(batch, for: .seconds(30))
            try await first.releaseTenant("acme")
            #expect(try await first.acquireTenant() == nil)
            #expect(try await second.acquireTenant() == nil)
            let until = try #require(try await second.pausedUntil(tenant: "acme"))
            #expect(until.timeIntervalSince(batch.claimedAt) > 29)
            #expect(try await first.usage().first?.pausedUntil == until)
            // The pause ends (an operator clears it here): the batch comes back with its attempt not spent.
            try await client.query("UPDATE refiner_segment_tenants SET paused_until = now()")
            _ = try #require(try await second.acquireTenant())
            let again = try #require(try await second.claimBatch(of: "acme"))
            #expect(again.messages.allSatisfy { $0.attempts == 1 })
        }
    }

    @Test func aRetryWaitHoldsTheWholeTenantAndKeepsTheFirstFailure() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            try await outbox.enqueue([TestDatabase.unit("a"), TestDatabase.unit("b")], tenant: "acme")
            _ = try #require(try await outbox.acquireTenant())
            let batch = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            try await outbox.retryLater(batch, after: .seconds(60))
            try await outbox.releaseTenant("acme")
            #expect(try await outbox.acquireTenant() == nil)
            #expect(try await outbox.usage().first?.retryAt != nil)
            try await client.query("UPDATE refiner_segment_tenants SET retry_at = now()")
            _ = try #require(try await outbox.acquireTenant())
            let again = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 2))
            #expect(again.segmentMessages.map(\.messageID) == ["a-0", "a-1"])
            #expect(again.messages.allSatisfy { $0.firstFailureAt != nil && $0.attempts == 2 })
            try await outbox.settleDelivered(again.messages)
            #expect(try await outbox.usage().first?.retryAt == nil)
        }
    }

    /// Review doubt: a claim that ignored `retry_at` sent a batch waiting for its retry early when the tenant was
    /// taken by name (`acquire(tenant:)`, the pipeline's way) rather than by ``PostgresOutbox/acquireTenant()``.
    @Test func aBatchWaitingForItsRetryIsNotClaimedEarlyByAnyInstance() async throws {
        try await TestDatabase.withSchema { client, schema in
            let first = TestDatabase.outbox(client, schema, owner: "first")
            let second = TestDatabase.outbox(client, schema, owner: "second")
            try await first.enqueue([TestDatabase.unit("a"), TestDatabase.unit("b")], tenant: "acme")
            _ = try #require(try await first.acquireTenant())
            let batch = try #require(try await first.claimBatch(of: "acme", maximumMessages: 2))
            try await first.retryLater(batch, after: .seconds(60))
            // Still holding the tenant: its next messages wait behind the failed batch.
            #expect(try await first.claimBatch(of: "acme") == nil)
            try await first.releaseTenant("acme")
            #expect(try await second.acquire(tenant: "acme") == false)
            #expect(try await second.claimBatch(of: "acme") == nil)
            #expect(
                try await second.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 1 << 20, lease: .seconds(30))
                    == nil)
            #expect(try await second.usage(tenant: "acme").claimableMessages == 0)
            // The wait ends: the batch that failed comes first.
            try await client.query("UPDATE refiner_segment_tenants SET retry_at = now()")
            #expect(try await second.acquire(tenant: "acme"))
            let again = try #require(try await second.claimBatch(of: "acme", maximumMessages: 2))
            #expect(again.segmentMessages.map(\.messageID) == ["a-0", "a-1"])
        }
    }

    @Test func settlingAndClaimingTheNextBatchIsOneStatementWithTheSameEffects() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            let units = (0..<5).map { TestDatabase.unit("u\($0)") }
            try await outbox.enqueue(units, tenant: "acme")
            _ = try #require(try await outbox.acquireTenant())
            let first = try #require(try await outbox.claimBatch(of: "acme", maximumMessages: 4))
            #expect(first.segmentMessages.map(\.messageID) == ["u0-0", "u0-1", "u1-0", "u1-1"])
            // A retry wait left from an earlier failure ends with the delivery, as with settleDelivered alone.
            try await client.query("UPDATE refiner_segment_tenants SET retry_at = now() + interval '1 hour'")
            let second = try #require(
                try await outbox.settleDelivered(first.messages, claimingNextOf: "acme", maximumMessages: 4))
            #expect(second.segmentMessages.map(\.messageID) == ["u2-0", "u2-1", "u3-0", "u3-1"])
            #expect(try await outbox.usage().first?.retryAt == nil)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 6)
            // The tenant lost (another instance took it after the lease): the delivered rows go all the same.
            try await client.query("UPDATE refiner_segment_tenants SET sender_owner = 'someone else'")
            #expect(try await outbox.settleDelivered(second.messages, claimingNextOf: "acme") == nil)
            #expect(try await TestDatabase.count("refiner_segment_outbox", client) == 2)
            await #expect(throws: PostgresStoreError.self) {
                _ = try await outbox.settleDelivered(first.messages, claimingNextOf: "other")
            }
        }
    }

    @Test func badInputIsRefusedBeforeAnythingIsStored() async throws {
        try await TestDatabase.withSchema { client, schema in
            let outbox = TestDatabase.outbox(client, schema)
            let empty = await #expect(throws: PostgresStoreError.self) {
                try await outbox.enqueue([TestDatabase.unit("a")], tenant: "")
            }
            #expect(empty?.code == .invalidInput)
            let huge = await #expect(throws: PostgresStoreError.self) {
                try await outbox.enqueue([TestDatabase.unit("a", count: 2501, padding: 1)], tenant: "acme")
            }
            #expect(huge?.description.contains("cannot fit one batch") == true)
            let stored = try await TestDatabase.count("refiner_segment_outbox", client)
            #expect(stored == 0)
        }
    }
}

extension TestDatabase {
    /// Waits until the server's `now()` is past `date` (leases are in the server's time).
    static func waitUntilServerTime(passes date: Date, _ client: PostgresClient) async throws {
        while true {
            let rows = try await client.query("SELECT now() > \(date)")
            for try await (passed) in rows.decode(Bool.self) where passed { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
