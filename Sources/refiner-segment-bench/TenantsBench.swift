import Foundation
import RefinerSegment

/// The pipeline group with `tenantCount` tenants sharing one transport that answers 200 at once, beside
/// the single pipeline: `refiner-segment-bench --only=tenants`.
///
/// Each tenant has its own recorder (a task, as a server's request handlers would be), one `record` per
/// pair, then `record(contentsOf:)` of 500 pairs at a time; the figures cover recording, batching (the
/// default linger of 20 ms), the shared in-memory store behind each tenant's `TenantStore`, the fair
/// scheduler's gate and the drain at shutdown. The single pipeline beside it is measured the same way
/// (`withPipeline`, one `record` per pair, flushed).
func tenantGroupFigures(
    pairs: [[SegmentMessage]],
    tenantCount: Int,
    rounds: Int,
    single: Double?,
    baseline: Double?
) async -> [Figure] {
    var figures: [Figure] = []
    var singleRate = single
    if singleRate == nil {
        singleRate = await measure(rounds: rounds, operations: pairs.count) {
            let transport = InstantTransport()
            try? await SegmentPipeline.withPipeline(writeKey: WriteKey("bench"), transport: transport) { pipeline in
                await recordAll(pairs, into: pipeline)
            }
            blackhole &+= transport.bytes.value
        }
        figures.append(Figure(name: "pipeline_pairs", value: singleRate ?? 0, unit: "pairs/s", baseline: baseline))
    }
    let share = pairs.count / tenantCount
    var requests = 0
    /// Each tenant's recorder records its share, `chunk` pairs per call; then the group drains.
    func run(chunk: Int) async -> Double {
        await measure(rounds: rounds, operations: share * tenantCount) {
            let transport = InstantTransport()
            guard
                let group = try? SegmentPipelineGroup(
                    transport: transport, configuration: .init(idleTimeout: nil),
                    resolver: { tenant in .init(writeKey: WriteKey("bench-\(tenant)")) })
            else { return }
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try? await group.run() }
                await withTaskGroup(of: Void.self) { recorders in
                    for tenant in 0..<tenantCount {
                        let mine = Array(pairs[(tenant * share)..<((tenant + 1) * share)])
                        recorders.addTask {
                            var start = 0
                            while start < mine.count {
                                let end = min(start + chunk, mine.count)
                                if chunk == 1 {
                                    try? await group.record(mine[start], tenant: "tenant-\(tenant)")
                                } else {
                                    try? await group.record(
                                        contentsOf: Array(mine[start..<end]), tenant: "tenant-\(tenant)")
                                }
                                start = end
                            }
                        }
                    }
                }
                // Drains every tenant: the figure includes delivering everything.
                group.triggerGracefulShutdown()
            }
            requests = transport.requests.value
            blackhole &+= transport.bytes.value
        }
    }
    let perPair = await run(chunk: 1)
    let perPairRequests = requests
    let chunked = await run(chunk: 500)
    figures.append(
        Figure(name: "group_pairs_\(tenantCount)_tenants", value: perPair, unit: "pairs/s", baseline: baseline))
    figures.append(
        Figure(
            name: "group_pairs_\(tenantCount)_tenants_contents_of", value: chunked, unit: "pairs/s", baseline: baseline)
    )
    if let singleRate {
        progress(
            "  \(tenantCount) tenants: \(Int(perPair)) pairs/s through the group one record per pair "
                + "(\(share * tenantCount / max(perPairRequests, 1)) pairs per request), \(Int(chunked)) with "
                + "record(contentsOf:) of 500 pairs (\(share * tenantCount / max(requests, 1)) per request); "
                + "\(Int(singleRate)) through one pipeline")
    }
    return figures
}
