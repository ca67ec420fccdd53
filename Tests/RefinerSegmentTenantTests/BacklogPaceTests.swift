import Foundation
import RefinerSegment
import Testing

/// A backlogged tenant sends at the pace its transport allows while other tenants sit in backoff timers or
/// `Retry-After` pauses: its next batch starts as soon as its previous one is answered, without the clock
/// moving.
@Suite(.serialized) struct BacklogPaceTests {
    private static func makeGroup(
        clock: SimulatedClock,
        network: any SegmentTransport,
        configuration: SegmentPipelineGroup.Configuration = .init(idleTimeout: nil),
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

    /// Whether `condition` comes to hold within a great many scheduling turns, the clock standing still
    /// (a bound on real work, not a timed wait: the work here takes a few thousand turns at most).
    private static func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<1_000_000 {
            if await condition() { return true }
            await Task.yield()
        }
        return await condition()
    }

    /// Answers at once without touching the clock ("down" 503, "limited" 429 with `Retry-After: 60` to
    /// its first request, anyone else 200), except the tenant ``held``, whose requests wait for
    /// ``release()``.
    final class InstantNetwork: SegmentTransport {
        let held: String
        private let state = Shared<(arrived: Int, waiting: [CheckedContinuation<Void, Never>], limited: Int)>(
            (0, [], 0))

        init(held: String) { self.held = held }

        /// Requests of the held tenant that reached the network so far.
        var arrived: Int { state.withLock { $0.arrived } }
        /// Requests of the held tenant waiting for ``release()`` now.
        var waiting: Int { state.withLock { $0.waiting.count } }

        func send(_ request: SegmentRequest) async throws -> SegmentResponse {
            let tenant = String(request.url.host?.split(separator: ".").first ?? "")
            switch tenant {
            case "down":
                return SegmentResponse(statusCode: 503)
            case "limited":
                let first = state.withLock { state -> Bool in
                    state.limited += 1
                    return state.limited == 1
                }
                return first
                    ? SegmentResponse(statusCode: 429, headerFields: ["Retry-After": "60"]) : SimulatedNetwork.ok
            case held:
                await withCheckedContinuation { continuation in
                    state.withLock {
                        $0.arrived += 1
                        $0.waiting.append(continuation)
                    }
                }
                return SimulatedNetwork.ok
            default:
                return SimulatedNetwork.ok
            }
        }

        /// Answers the held tenant's waiting requests with 200.
        func release() {
            let waiting = state.withLock { state in
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume() }
        }
    }

    /// The question settled here: does a backlogged tenant's next batch wait for the clock while other
    /// tenants sit in backoff and `Retry-After` timers? The clock never moves in this test, so every timer
    /// stays pending; each of the backlog's batches must still reach the network as soon as the one before
    /// it is answered.
    @Test func aBacklogsNextBatchStartsAsSoonAsItsLastIsAnsweredWhileOthersSitInTimers() async throws {
        let clock = SimulatedClock()
        let network = InstantNetwork(held: "backlog")
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(maximumRequestsInFlight: 2, idleTimeout: nil)
        ) { tenant, settings in
            // 100 messages a batch: the thousand queued make ten full batches. No linger: its timer would
            // never fire on this clock, and "down" and "limited" must send their first batches at once.
            if tenant == "backlog" { settings.pipeline.batch.maximumMessages = 100 }
            settings.pipeline.linger = .zero
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await group.record(contentsOf: TestMessages.units(1_000, tenant: "backlog"), tenant: "backlog")
            try await group.record(contentsOf: TestMessages.units(10, tenant: "down"), tenant: "down")
            try await group.record(contentsOf: TestMessages.units(10, tenant: "limited"), tenant: "limited")
            // "down" sleeps in its backoff and "limited" in its pause, on a clock that does not move.
            #expect(await Self.eventually { await group.status(of: "limited")?.isPaused == true })
            #expect(
                await Self.eventually {
                    await group.status(of: "down")?.counters.requests ?? 0 >= 1 && clock.sleeperCount >= 2
                })
            for batch in 1...10 {
                // A batch held back (by the gate, the group or the pipeline) until a timer fires never comes.
                let arrived = await Self.eventually { network.waiting > 0 }
                #expect(arrived, "batch \(batch) of the backlog did not reach the network while the clock stood")
                guard arrived else { break }
                #expect(network.arrived == batch)
                network.release()
            }
            #expect(await Self.eventually { await group.status(of: "backlog")?.counters.delivered == 1_000 })
            #expect(clock.now == .zero)
            #expect(clock.sleeperCount >= 2)
            tasks.cancelAll()
        }
    }

    /// The same in the simulation the acceptance scenes run in: a backlog beside an outage (503, five
    /// attempts) and a rate limit (`Retry-After: 60`), with 20 ms of virtual latency per request. The backlog
    /// must send at the pace of its one batch in flight, not only when the others' timers fire.
    ///
    /// (The driver once let virtual time pass while the backlog's next request was between its slot and the
    /// network: it counted "granted, not yet on the network" as "waiting for a slot". Each such jump took
    /// the clock to the next backoff or pause timer; the backlog got 45 to 261 requests out in 60 s instead
    /// of sending its whole backlog in 8.)
    @Test func aBacklogSendsAtItsTransportsPaceInVirtualTimeBesideAnOutageAndARateLimit() async throws {
        let clock = SimulatedClock()
        let latency = Duration.milliseconds(20)
        let network = SimulatedNetwork(clock: clock, latency: latency) { tenant, attempt in
            switch tenant {
            case "down": SegmentResponse(statusCode: 503)
            case "limited" where attempt == 0: SegmentResponse(statusCode: 429, headerFields: ["Retry-After": "60"])
            default: SimulatedNetwork.ok
            }
        }
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(maximumRequestsInFlight: 64, idleTimeout: nil)
        ) { tenant, settings in
            if tenant == "down" { settings.pipeline.retry.maximumAttempts = 5 }
        }
        // 200,000 messages of 200 bytes: 80 full batches of 2,500 messages.
        let backlog = 200_000
        let fed = Shared(0)
        let driver = Driver(clock: clock, network: network, group: group, watched: ["backlog", "down", "limited"]) {
            guard let status = await group.status(of: "backlog") else { return true }
            let counters = status.counters
            if fed.current >= backlog && counters.queuedMessages == 0 && counters.inFlightMessages == 0 { return true }
            return status.requestsWaiting > 0 || network.isOnTheWire("backlog")
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let chunk = Array(repeating: [TestMessages.message("backlog")], count: 10_000)
                for _ in 0..<(backlog / chunk.count) {
                    do { try await group.record(contentsOf: chunk, tenant: "backlog") } catch { return }
                    fed.withLock { $0 += chunk.count }
                }
            }
            try await group.record(contentsOf: TestMessages.units(10, tenant: "down"), tenant: "down")
            try await group.record(contentsOf: TestMessages.units(10, tenant: "limited"), tenant: "limited")
            await driver.run(to: .seconds(60))
            tasks.cancelAll()
        }
        let requests = network.requests(of: "backlog")
        // Everything went out, one batch after the other: 80 requests of 20 ms each end near 1.6 s, and no
        // gap between two of them comes near the outage's first backoff (0.5 s).
        #expect(requests.count == 80)
        #expect(await group.status(of: "backlog")?.counters.delivered == backlog)
        var longest = Duration.zero
        for (earlier, later) in zip(requests, requests.dropFirst()) {
            longest = max(longest, later.sentAt - earlier.sentAt)
        }
        #expect(longest <= latency * 3, "the longest gap between two of the backlog's requests: \(longest)")
        #expect(requests.last.map { $0.sentAt <= .seconds(2) } == true, "last at \(requests.last?.sentAt ?? .zero)")
        // The others did what their timers say, beside it.
        #expect(network.requests(of: "down").count == 5)
        #expect(network.requests(of: "limited").count == 2)
    }
}
