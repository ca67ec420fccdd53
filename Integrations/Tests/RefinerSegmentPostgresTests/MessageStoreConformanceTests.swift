// Runs once the core has `SegmentMessageStore`: delete this `#if` and its `#endif` then (see the store's file).
#if REFINER_SEGMENT_MESSAGE_STORE
import Foundation
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import Testing

/// The outbox through the core's `SegmentMessageStore` protocol, as a pipeline drives it.
@Suite(.enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct MessageStoreConformanceTests {
    @Test func aPipelineStoreAppendsClaimsSettlesAndReleases() async throws {
        try await TestDatabase.withSchema { client, schema in
            let store: any SegmentMessageStore = TestDatabase.outbox(client, schema, owner: "pipeline")
            let other: any SegmentMessageStore = TestDatabase.outbox(client, schema, owner: "other")
            #expect(
                try await store.append([TestDatabase.unit("a"), TestDatabase.unit("b", count: 3)], tenant: "acme") == 2)
            let claim = try #require(
                try await store.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 100_000, lease: .seconds(30)))
            #expect(claim.messages.map(\.messageID) == ["a-0", "a-1", "b-0", "b-1", "b-2"])
            #expect(claim.unitEnds == [2, 5])
            // One active sender per tenant: another instance's pipeline gets nothing while this one holds it.
            #expect(
                try await other.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 100_000, lease: .seconds(30))
                    == nil)
            try await store.settle(claim, messages: 0..<2, as: .delivered)
            try await store.settle(claim, messages: 2..<3, as: .failed("HTTP 400: bad"))
            let next = Date().addingTimeInterval(60)
            try await store.settle(
                claim, messages: 3..<5,
                as: .retry(SegmentRetryState(failures: 1, retryCount: 1, firstFailure: Date(), nextAttempt: next)))
            try await store.release(claim)
            #expect(try await TestDatabase.count("refiner_segment_dead_letters", client) == 1)
            let usage = try await store.usage(tenant: "acme")
            #expect(usage.messages == 2)
            // Released: any instance may take the rest, with its retry state.
            let again = try #require(
                try await other.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 100_000, lease: .seconds(30)))
            #expect(again.messages.map(\.messageID) == ["b-1", "b-2"])
            #expect(again.retryState.failures == 1)
            #expect(again.retryState.retryCount == 1)
            #expect(again.retryState.firstFailure != nil)
            // A pause set by one instance stops the others' claims.
            try await other.release(again)
            try await store.setPause(until: Date().addingTimeInterval(30), tenant: "acme")
            #expect(
                try await other.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 100_000, lease: .seconds(30))
                    == nil)
            #expect(try await other.recover(tenant: "acme").pausedUntil != nil)
            #expect(try await store.handBack(tenant: "acme").isEmpty)
        }
    }
}
#endif
