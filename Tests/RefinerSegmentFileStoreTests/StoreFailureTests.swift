import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@testable import RefinerSegmentFileStore

/// A file store whose `settle` throws (a full disk, say); everything else passes through.
private struct SettleFailingStore: SegmentMessageStore {
    struct DiskFull: Error, CustomStringConvertible {
        var description: String { "no space left on device" }
    }

    let base: FileMessageStore

    func append(_ units: [[SegmentMessage]], tenant: String) async throws -> Int {
        try await base.append(units, tenant: tenant)
    }
    func claim(tenant: String, maximumMessages: Int, maximumBytes: Int, lease: Duration) async throws
        -> SegmentClaim?
    {
        try await base.claim(tenant: tenant, maximumMessages: maximumMessages, maximumBytes: maximumBytes, lease: lease)
    }
    func settle(_ claim: SegmentClaim, messages range: Range<Int>, as settlement: SegmentSettlement) async throws {
        throw DiskFull()
    }
    func release(_ claim: SegmentClaim) async throws { try await base.release(claim) }
    func recover(tenant: String) async throws -> SegmentStoreRecovery { try await base.recover(tenant: tenant) }
    func usage(tenant: String) async throws -> SegmentStoreUsage { try await base.usage(tenant: tenant) }
    func setPause(until end: Date?, tenant: String) async throws { try await base.setPause(until: end, tenant: tenant) }
    func handBack(tenant: String) async throws -> [SegmentMessage] { try await base.handBack(tenant: tenant) }
}

@Suite struct FileStoreFailureTests {
    /// Segment accepts the batch but the store cannot record it: the failure is counted and reported with
    /// code `storeFailure` and the store's error, and the messages stay in the store to be sent again.
    @Test func aStoreThatCannotSettleIsReportedAndKeepsTheMessages() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("settle-fails-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: path) }
        let units = try (0..<3).map { index in
            [try SegmentMessage(json: Array(#"{"type":"identify","messageId":"m\#(index)","userId":"u"}"#.utf8))]
        }
        let transport = RecordingTransport()
        let (counters, failures) = try await {
            let store = SettleFailingStore(base: try FileMessageStore(directory: path))
            return try await SegmentPipeline.withPipeline(
                writeKey: WriteKey("wk"), transport: transport, store: store
            ) { pipeline in
                let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
                try await pipeline.record(contentsOf: units)
                await pipeline.flush()
                var failures: [SegmentDeliveryError] = []
                for await outcome in outcomes {
                    if case .failed(let messages, let reason) = outcome, messages.isEmpty { failures.append(reason) }
                    if case .delivered = outcome { break }
                }
                return (await pipeline.counters, failures)
            }
        }()
        #expect(counters.storeFailures >= 1)
        #expect(counters.delivered == 3, "Segment did receive them")
        let failure = try #require(failures.first)
        #expect(failure.code == .storeFailure)
        #expect(failure.underlying is SettleFailingStore.DiskFull)
        #expect(failure.description.contains("could not record that"))
        let reopened = try FileMessageStore(directory: path)
        #expect(try await reopened.recover(tenant: "default").messages == 3, "kept, to be sent again")
    }
}
