import Foundation
import RefinerSegment

/// The pipeline group with `tenantCount` tenants sharing one transport that answers 200 at once, beside
/// the single pipeline: `refiner-segment-bench --only=tenants`.
///
/// Each tenant has its own recorder (a task, as a server's request handlers would be), one `record` per
/// pair; the figure covers recording, batching, the fair scheduler's gate and the drain at shutdown.
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
            guard let pipeline = try? SegmentPipeline(writeKey: WriteKey("bench"), transport: transport) else { return }
            await recordAll(pairs, into: pipeline)
            await pipeline.shutdown(deadline: Date())
            blackhole &+= transport.bytes.value
        }
        figures.append(Figure(name: "pipeline_pairs", value: singleRate ?? 0, unit: "pairs/s", baseline: baseline))
    }
    let share = pairs.count / tenantCount
    let groupRate = await measure(rounds: rounds, operations: share * tenantCount) {
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
                    let mine = pairs[(tenant * share)..<((tenant + 1) * share)]
                    recorders.addTask {
                        for pair in mine { try? await group.record(pair, tenant: "tenant-\(tenant)") }
                    }
                }
            }
            // Drains every tenant: the figure includes delivering everything.
            group.triggerGracefulShutdown()
        }
        blackhole &+= transport.bytes.value
    }
    figures.append(
        Figure(name: "group_pairs_\(tenantCount)_tenants", value: groupRate, unit: "pairs/s", baseline: baseline))
    if let singleRate {
        progress(
            "  \(tenantCount) tenants: \(Int(groupRate)) pairs/s through the group, "
                + "\(Int(singleRate)) through one pipeline")
    }
    return figures
}
