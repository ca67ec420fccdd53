import Foundation
import RefinerSegment
import Testing

/// The acceptance scenes of many tenants in virtual time: a thousand tenants beside a backlog, an outage
/// and a rate limit; fair shares of the transport.
@Suite(.serialized) struct NoisyNeighbourTests {
    private static func makeGroup(
        clock: SimulatedClock,
        network: SimulatedNetwork,
        configuration: SegmentPipelineGroup.Configuration,
        settings: @escaping @Sendable (String, inout SegmentPipelineGroup.TenantConfiguration) -> Void = { _, _ in }
    ) throws -> SegmentPipelineGroup {
        try SegmentPipelineGroup(
            transport: network, configuration: configuration, clock: clock.deliveryClock, wallClock: clock.wallClock,
            jitter: { $0 },
            resolver: { tenant in
                var tenantSettings = SegmentPipelineGroup.TenantConfiguration(
                    writeKey: WriteKey("wk_\(tenant)_secret"),
                    pipeline: SegmentPipeline.Configuration(endpoint: SimulatedNetwork.endpoint(tenant)))
                settings(tenant, &tenantSettings)
                return tenantSettings
            })
    }

    @Test func quietTenantsAreServedPromptlyBesideABacklogAnOutageAndARateLimit() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { tenant, attempt in
            switch tenant {
            case "down": SegmentResponse(statusCode: 503)
            case "limited" where attempt == 0: SegmentResponse(statusCode: 429, headerFields: ["Retry-After": "60"])
            default: SimulatedNetwork.ok
            }
        }
        let group = try Self.makeGroup(
            clock: clock, network: network,
            configuration: .init(maximumRequestsInFlight: 64, idleTimeout: nil)
        ) { tenant, settings in
            // The outage gives up after five attempts: 0.5 + 1 + 2 + 4 s of backoff.
            if tenant == "down" { settings.pipeline.retry.maximumAttempts = 5 }
        }
        let quiet = (0..<997).map { String(format: "q%03d", $0) }
        let backlog = 1_000_000
        let fed = Shared(0)
        // Time passes only while the backlog has a request out (waiting for a slot, or asleep on the
        // network), or has sent everything: its feeding and encoding take real time, which must not look
        // like idleness and let virtual time jump past it. A request granted its slot and on its way to the
        // network counts as neither (BacklogPaceTests shows what counting it cost).
        let driver = Driver(clock: clock, network: network, group: group, watched: ["backlog", "down", "limited"]) {
            guard let status = await group.status(of: "backlog") else { return true }
            let counters = status.counters
            if fed.current >= backlog && counters.queuedMessages == 0 && counters.inFlightMessages == 0 { return true }
            return status.requestsWaiting > 0 || network.isOnTheWire("backlog")
        }
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { await outcomes.collect(stream) }
            // The backlog: a million messages, fed as fast as the tenant's own bounded queue takes them.
            tasks.addTask {
                let message = TestMessages.message("backlog")
                let chunk = Array(repeating: [message], count: 10_000)
                for _ in 0..<(backlog / chunk.count) {
                    do { try await group.record(contentsOf: chunk, tenant: "backlog") } catch { return }
                    fed.withLock { $0 += chunk.count }
                }
            }
            try await group.record(contentsOf: TestMessages.units(10, tenant: "down"), tenant: "down")
            try await group.record(contentsOf: TestMessages.units(10, tenant: "limited"), tenant: "limited")

            // One second in, the backlog is sending, the outage retrying, the rate limit paused.
            await driver.run(to: .seconds(1))
            let burstStart = clock.now
            let backlogRequestsBefore = network.requests(of: "backlog").count
            for tenant in quiet {
                try await group.record(contentsOf: TestMessages.units(2, tenant: tenant), tenant: tenant)
            }
            let quietSet = Set(quiet)
            let finished = await driver.run {
                let sent = Set(network.requests.lazy.filter { quietSet.contains($0.tenant) }.map(\.tenant))
                return sent.count == quiet.count && network.requests(of: "limited").count >= 2
            }
            #expect(finished)

            // The quiet tenants' first batch: within 1 s of virtual time at the 99th percentile.
            var first: [String: Duration] = [:]
            for request in network.requests where quietSet.contains(request.tenant) && first[request.tenant] == nil {
                first[request.tenant] = request.sentAt - burstStart
            }
            let waits = first.values.sorted()
            #expect(waits.count == quiet.count)
            let p99 = waits[min(waits.count - 1, waits.count * 99 / 100)]
            #expect(p99 <= .seconds(1), "p99 \(p99), max \(waits.last ?? .zero)")
            print("quiet tenants' first batch: p99 \(p99), max \(waits.last ?? .zero); backlog fed \(fed.current)")

            // The backlog kept sending during the burst, and was not done: it had its share, no more.
            let backlogRequests = network.requests(of: "backlog")
            #expect(backlogRequests.count > backlogRequestsBefore)
            #expect(backlogRequests.contains { $0.sentAt >= burstStart && $0.sentAt <= burstStart + .seconds(1) })
            #expect(fed.current > 0)
            print("backlog: \(backlogRequests.count) requests by the end")
            // ... at the pace of its one batch in flight: a million messages of 200 bytes are 400 full
            // batches, 8 s of 20 ms requests without the quiet tenants; all of them went out in the first
            // 60 s (a driver that let time jump past it got 45 to 261 out).
            let backlogBy60 = backlogRequests.filter { $0.sentAt <= .seconds(60) }.count
            #expect(backlogBy60 >= backlog / SegmentBatch.maximumMessages, "backlog requests by 60 s: \(backlogBy60)")

            // The rate-limited tenant sent nothing for 60 s, then resumed and delivered.
            let limited = network.requests(of: "limited")
            #expect(limited.count >= 2)
            if limited.count >= 2 {
                #expect(limited[1].sentAt - limited[0].sentAt >= .seconds(60))
                #expect(limited[1].sentAt - limited[0].sentAt < .seconds(61))
            }
            #expect(await driver.run { outcomes.delivered("limited") == 10 })

            // The outage failed by the retry policy: five attempts per batch, then every message failed.
            let down = network.requests(of: "down")
            #expect(!down.isEmpty && down.count % 5 == 0)
            #expect(down.map(\.retryCount).max() == 4)
            #expect(outcomes.failed("down") == 10)
            let reasons = outcomes.all.compactMap { outcome -> SegmentDeliveryError? in
                guard outcome.tenant == "down", case .failed(_, let reason) = outcome.outcome else { return nil }
                return reason
            }
            #expect(reasons.allSatisfy { $0.code == .attemptsExhausted })

            tasks.cancelAll()
        }
    }

    /// Ten tenants (or three of each weight) with more to send than two requests in flight carry; the
    /// shares of `requests` requests after the first `warmUp`.
    private func shares(
        weights: [Int],
        batchBytes: [Int],
        requests: Int,
        warmUp: Int = 50
    ) async throws -> [String: Int] {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let tenants = weights.indices.map { "t\($0)" }
        let group = try Self.makeGroup(
            clock: clock, network: network,
            // A quantum of one batch, so that the first requests measured span many rounds.
            configuration: .init(maximumRequestsInFlight: 2, quantum: 50_000, idleTimeout: nil)
        ) { tenant, settings in
            let index = Int(tenant.dropFirst())!
            settings.weight = weights[index]
            // Units of ~1 KB; a batch holds as many as its byte limit allows.
            settings.pipeline.batch.maximumBytes = batchBytes[index]
            settings.pipeline.queue.maximumMessages = 10_000
        }
        // Every tenant always has more to send: time passes only once each has a request asleep on the
        // network or waiting for a slot (a tenant between two batches in real time has not fallen idle, and
        // one whose request has its slot but is not yet on the network would lose the time that passes).
        let driver = Driver(clock: clock, network: network, group: group) {
            for tenant in tenants where !network.isOnTheWire(tenant) {
                guard await group.status(of: tenant)?.requestsWaiting ?? 0 > 0 else { return false }
            }
            return true
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for tenant in tenants {
                // More than any tenant can send in the window measured: every tenant has more to send.
                let unit = [TestMessages.message(tenant, bytes: 1_000)]
                try await group.record(contentsOf: Array(repeating: unit, count: 10_000), tenant: tenant)
            }
            await driver.run { network.requestCount >= warmUp + requests }
            tasks.cancelAll()
        }
        // The first requests go out in the order the tenants came; the shares are measured after them.
        var bytes: [String: Int] = [:]
        for request in network.requests.dropFirst(warmUp).prefix(requests) {
            bytes[request.tenant, default: 0] += request.bytes
        }
        return bytes
    }

    @Test func tenantsUnderEqualLoadGetEqualShares() async throws {
        let bytes = try await shares(
            weights: Array(repeating: 1, count: 10), batchBytes: Array(repeating: 50_000, count: 10), requests: 1_000)
        let total = Double(bytes.values.reduce(0, +))
        #expect(bytes.count == 10)
        for (tenant, sent) in bytes {
            let share = Double(sent) / total
            #expect(abs(share - 0.1) <= 0.01, "\(tenant): \(share)")
        }
    }

    @Test func tenantsWithSmallerBatchesGetEqualBytesNotEqualRequests() async throws {
        let sizes = (0..<10).map { 20_000 + 5_000 * $0 }
        let bytes = try await shares(weights: Array(repeating: 1, count: 10), batchBytes: sizes, requests: 1_000)
        let total = Double(bytes.values.reduce(0, +))
        for (tenant, sent) in bytes {
            let share = Double(sent) / total
            #expect(abs(share - 0.1) <= 0.01, "\(tenant): \(share)")
        }
    }

    @Test func weightsOneTwoFourGetSharesOneTwoFour() async throws {
        let weights = (0..<9).map { [1, 2, 4][$0 % 3] }
        let bytes = try await shares(weights: weights, batchBytes: Array(repeating: 50_000, count: 9), requests: 700)
        var byWeight: [Int: Int] = [:]
        for (index, weight) in weights.enumerated() { byWeight[weight, default: 0] += bytes["t\(index)"] ?? 0 }
        let unit = Double(byWeight[1] ?? 0)
        #expect(unit > 0)
        for weight in [2, 4] {
            let ratio = Double(byWeight[weight] ?? 0) / unit
            #expect(abs(ratio - Double(weight)) <= 0.1 * Double(weight), "weight \(weight): \(ratio)")
        }
    }
}
