import Foundation
import RefinerSegment

/// A test store in front of an in-memory one: every call it does not implement itself goes to `inner`, so
/// a test double states only what it changes (a failing usage, a held append, a flaky claim).
protocol ForwardingMessageStore: SegmentMessageStore {
    var inner: InMemoryMessageStore { get }
}

extension ForwardingMessageStore {
    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        try await inner.append(units, tenant: tenant)
    }
    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        try await inner.claim(
            tenant: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
    }
    func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws {
        try await inner.settle(claim, messages: range, as: settlement)
    }
    func release(_ claim: SegmentClaim) async throws { try await inner.release(claim) }
    func recover(tenant: String) async throws -> SegmentStoreRecovery { try await inner.recover(tenant: tenant) }
    func usage(tenant: String) async throws -> SegmentStoreUsage { try await inner.usage(tenant: tenant) }
    func setPause(until end: Date?, tenant: String) async throws {
        try await inner.setPause(until: end, tenant: tenant)
    }
    func handBack(tenant: String) async throws -> [SegmentMessage] { try await inner.handBack(tenant: tenant) }
}
