import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// A store (behind the protocol) whose `usage` fails twice: the pipeline reports each failure and tries
/// again, rather than take the store for empty.
final class UsageFailingStore: SegmentMessageStore, ForwardingMessageStore {
    struct Unreachable: Error, CustomStringConvertible {
        var description: String { "the disk is away" }
    }

    let inner = InMemoryMessageStore()
    private let failures = Locked(2)

    func usage(tenant: String) async throws -> SegmentStoreUsage {
        let fail = failures.withLock { left -> Bool in
            left -= 1
            return left >= 0
        }
        if fail { throw Unreachable() }
        return try await inner.usage(tenant: tenant)
    }
}

@Suite struct StoreUsageFailureTests {
    @Test func aStoreWhoseUsageFailsIsReportedAndStillDelivers() async throws {
        let clock = VirtualClock()
        let pairs = try (0..<3).map { try Messages.pair("u\($0)") }
        let (counters, reasons) = try await SegmentPipeline.withPipeline(
            writeKey: Harness.writeKey, transport: RecordingTransport(), store: UsageFailingStore(), clock: clock,
            wallClock: clock.wallClock
        ) { pipeline in
            let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
            try await pipeline.record(contentsOf: pairs)
            await pipeline.flush()
            var reasons: [SegmentDeliveryError] = []
            for await outcome in outcomes {
                if case .failed(let messages, let reason) = outcome, messages.isEmpty { reasons.append(reason) }
                if case .delivered = outcome { break }
            }
            return (await pipeline.counters, reasons)
        }
        #expect(counters.delivered == 6)
        #expect(counters.storeFailures == 2)
        #expect(reasons.count == 2)
        #expect(reasons.allSatisfy { $0.code == .storeFailure && $0.underlying is UsageFailingStore.Unreachable })
        #expect(reasons.first?.description.contains("could not say what it holds") == true)
    }
}
