import Foundation
import RefinerSegment
import Testing

/// The pipeline group's contract: isolation of bounds, names instead of keys, tenants opened and closed,
/// the lifecycle.
@Suite struct PipelineGroupTests {
    /// A group whose tenants each have the write key `wk_<tenant>_secret` and their own endpoint.
    private static func makeGroup(
        clock: SimulatedClock,
        network: SimulatedNetwork,
        configuration: SegmentPipelineGroup.Configuration = .init(idleTimeout: nil),
        store: (any SegmentMessageStore)? = nil,
        resolved: Shared<[String]> = Shared([]),
        settings: @escaping @Sendable (String, inout SegmentPipelineGroup.TenantConfiguration) -> Void = { _, _ in }
    ) throws -> SegmentPipelineGroup {
        try SegmentPipelineGroup(
            transport: network, configuration: configuration, store: store, clock: clock.deliveryClock,
            wallClock: clock.wallClock,
            jitter: { $0 },
            resolver: { tenant in
                resolved.withLock { $0.append(tenant) }
                guard !tenant.hasPrefix("unknown") else { return nil }
                var tenantSettings = SegmentPipelineGroup.TenantConfiguration(
                    writeKey: Self.writeKey(tenant),
                    pipeline: SegmentPipeline.Configuration(endpoint: SimulatedNetwork.endpoint(tenant)))
                settings(tenant, &tenantSettings)
                return tenantSettings
            })
    }

    private static func writeKey(_ tenant: String) -> WriteKey { WriteKey("wk_\(tenant)_secret") }

    // MARK: Isolation of bounds

    @Test func aTenantWhoseQueueIsFullNeverMakesAnotherTenantsRecordWait() async throws {
        let clock = SimulatedClock()
        // "full" never gets an answer until released; "free" is answered at once.
        let network = SimulatedNetwork(clock: clock) { tenant, _ in tenant == "full" ? nil : SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network) { tenant, settings in
            if tenant == "full" { settings.pipeline.queue.maximumMessages = 1 }
        }
        let timeline = Shared<[String]>([])
        func note(_ event: String) { timeline.withLock { $0.append("\(event) @\(clock.now)") } }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // One batch in flight (held), one message queued: full's queue is full.
            let driver = Driver(clock: clock, network: network, group: group)
            try await group.record([TestMessages.message("full-0")], tenant: "full")
            await driver.run { network.requestCount == 1 }
            try await group.record([TestMessages.message("full-1")], tenant: "full")
            tasks.addTask {
                note("full: record 2 waits")
                try await group.record([TestMessages.message("full-2")], tenant: "full")
                note("full: record 2 accepted")
            }
            while await group.status(of: "full")?.counters.waitingToRecord != 1 { await Task.yield() }
            for index in 0..<10 {
                try await group.record([TestMessages.message("free-\(index)")], tenant: "free")
                note("free: record \(index) accepted")
            }
            #expect(await group.status(of: "full")?.counters.waitingToRecord == 1)
            note("full: endpoint answers")
            network.release("full")
            // full-1 is claimed once its linger has passed: room for full-2.
            #expect(await driver.run { await group.status(of: "full")?.counters.waitingToRecord == 0 })
            // The waiting task notes its acceptance as soon as it is resumed.
            while !timeline.current.contains(where: { $0.hasPrefix("full: record 2 accepted") }) { await Task.yield() }
            network.release("full")
            tasks.cancelAll()
        }
        let events = timeline.current.map { $0.components(separatedBy: " @")[0] }
        #expect(
            events
                == ["full: record 2 waits"] + (0..<10).map { "free: record \($0) accepted" } + [
                    "full: endpoint answers", "full: record 2 accepted",
                ])
        // Everything of "free" was accepted at the instant "full" began to wait: it never waited on anyone's
        // clock either.
        let waitedAt = try #require(timeline.current.first?.components(separatedBy: " @").last)
        #expect(timeline.current.filter { $0.hasPrefix("free") }.allSatisfy { $0.hasSuffix("@" + waitedAt) })
    }

    @Test func aFullTenantThatFailsFastNamesItselfAndOthersGoOn() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { tenant, _ in tenant == "full" ? nil : SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network) { tenant, settings in
            if tenant == "full" { settings.pipeline.queue = .init(maximumMessages: 1, whenFull: .fail) }
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await group.record([TestMessages.message("full-0")], tenant: "full")
            await Driver(clock: clock, network: network, group: group).run { network.requestCount == 1 }
            try await group.record([TestMessages.message("full-1")], tenant: "full")
            let error = await #expect(throws: SegmentTenantError.self) {
                try await group.record([TestMessages.message("full-2")], tenant: "full")
            }
            #expect(error?.tenant == "full")
            #expect(error?.code == .delivery)
            #expect(error?.deliveryError?.code == .queueFull)
            #expect(error.map { String(describing: $0) }?.hasPrefix("tenant 'full': ") == true)
            try await group.record([TestMessages.message("free-0")], tenant: "free")
            network.release("full")
            tasks.cancelAll()
        }
    }

    @Test func manyUnitsStopAtTheFirstOneThePipelineRefuses() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network)
        var units = TestMessages.units(3, tenant: "acme")
        units.append([TestMessages.message("huge", bytes: 40_000)])
        units += TestMessages.units(2, tenant: "late")
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record(contentsOf: units, tenant: "acme")
        }
        #expect(error?.tenant == "acme")
        #expect(error?.deliveryError?.code == .messageTooLarge)
        #expect(await group.status(of: "acme")?.counters.accepted == 3)
        // The refused unit holds no room; the accepted ones do until they are delivered.
        #expect(await group.status(of: "acme")?.bytes == 3 * 200)
    }

    @Test func aFailFastTenantGetsGroupFullWhenTheGroupsBoundIsReached() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in nil }
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(maximumBytes: 600_000, idleTimeout: nil)
        ) { _, settings in settings.pipeline.queue.whenFull = .fail }
        // 2,900 units of 200 bytes nearly fill the 600,000-byte bound (the first batch stays held in flight).
        try await group.record(contentsOf: TestMessages.units(2_900, tenant: "a"), tenant: "a")
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record(contentsOf: TestMessages.units(200, tenant: "b"), tenant: "b")
        }
        #expect(error?.code == .groupFull)
        #expect(error?.tenant == "b")
        network.release("a")
    }

    // MARK: One store

    @Test func tenantsShareOneStorePartitionedByTheirIDs() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let store = InMemoryMessageStore()
        let group = try Self.makeGroup(clock: clock, network: network, store: store) { tenant, settings in
            if tenant == "a" { settings.pipeline.queue = .init(maximumMessages: 3, whenFull: .fail) }
        }
        // Before run(): recording fills the shared store, each tenant under its id, within its own bounds.
        try await group.record(contentsOf: TestMessages.units(3, tenant: "a"), tenant: "a")
        try await group.record(contentsOf: TestMessages.units(5, tenant: "b"), tenant: "b")
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record([TestMessages.message("a-late")], tenant: "a")
        }
        #expect(error?.deliveryError?.code == .queueFull)
        #expect(try await store.usage(tenant: "a").messages == 3)
        #expect(try await store.usage(tenant: "b").messages == 5)
        #expect(try await store.usage(tenant: "c").messages == 0)
        #expect(await group.status(of: "a")?.bytes == 3 * 200)
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()
        await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { await outcomes.collect(stream) }
            let driver = Driver(clock: clock, network: network, group: group)
            #expect(await driver.run { outcomes.delivered("a") == 3 && outcomes.delivered("b") == 5 })
            #expect(await group.statistics.bytes == 0)
            tasks.cancelAll()
        }
        // Settled messages left the store and gave their room under the group's bound back.
        let left = (try await store.usage(tenant: "a").messages, try await store.usage(tenant: "b").messages)
        #expect(left == (0, 0))
    }

    // MARK: Names, not keys

    @Test func outcomesAndCountersNameTheTenantAndNeverItsWriteKey() async throws {
        let clock = SimulatedClock()
        // "refused" answers 401 with a body that echoes the request's key, as a careless proxy might.
        let network = SimulatedNetwork(clock: clock) { tenant, _ in
            tenant == "refused"
                ? SegmentResponse(statusCode: 401, body: Array("bad key wk_refused_secret".utf8)) : SimulatedNetwork.ok
        }
        let group = try Self.makeGroup(clock: clock, network: network)
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { await outcomes.collect(stream) }
            for tenant in ["acme", "globex", "refused"] {
                try await group.record(contentsOf: TestMessages.units(3, tenant: tenant), tenant: tenant)
            }
            let driver = Driver(clock: clock, network: network, group: group)
            #expect(await driver.run { outcomes.delivered("acme") == 3 && outcomes.delivered("globex") == 3 })
            #expect(await driver.run { outcomes.failed("refused") == 3 })
            let acme = await group.status(of: "acme")
            #expect(acme?.counters.delivered == 3)
            #expect(acme?.bytes == 0)
            #expect((acme?.bytesSent ?? 0) > 0)
            #expect(await group.openTenants == ["acme", "globex", "refused"])
            let printed =
                outcomes.all.map { "\($0)" }.joined() + "\(String(describing: acme))" + "\(group)"
                + "\(await group.statistics)"
            for tenant in ["acme", "globex", "refused"] {
                #expect(!printed.contains("wk_\(tenant)_secret"))
                #expect(!printed.contains(Self.writeKey(tenant).basicAuthorization.dropFirst("Basic ".count)))
            }
            #expect(outcomes.all.allSatisfy { ["acme", "globex", "refused"].contains($0.tenant) })
            tasks.cancelAll()
        }
    }

    @Test func anUnknownTenantIsRefusedByName() async throws {
        let clock = SimulatedClock()
        let group = try Self.makeGroup(clock: clock, network: SimulatedNetwork(clock: clock))
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record([TestMessages.message("m")], tenant: "unknown-co")
        }
        #expect(error?.code == .unknownTenant)
        #expect(error?.tenant == "unknown-co")
        #expect(error?.description == "tenant 'unknown-co': unknown tenant: the resolver has no settings for it")
        #expect(await group.openTenants.isEmpty)
    }

    @Test func aTenantWhoseSettingsCannotBeUsedIsRefusedByName() async throws {
        let clock = SimulatedClock()
        let group = try Self.makeGroup(clock: clock, network: SimulatedNetwork(clock: clock)) { _, settings in
            settings.pipeline.endpoint = SegmentEndpoint(baseURL: URL(string: "http://collector.example")!)
        }
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record([TestMessages.message("m")], tenant: "plain")
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.tenant == "plain")
        #expect(error?.deliveryError?.code == .invalidConfiguration)
        #expect(error.map { "\($0)" }?.contains("wk_plain_secret") == false)
    }

    @Test(arguments: [
        SegmentPipelineGroup.Configuration(maximumRequestsInFlight: 0),
        SegmentPipelineGroup.Configuration(quantum: 0),
        SegmentPipelineGroup.Configuration(maximumBytes: 1_000),
        SegmentPipelineGroup.Configuration(idleTimeout: .zero),
    ])
    func groupSettingsOutOfRangeAreRefused(configuration: SegmentPipelineGroup.Configuration) {
        #expect(throws: SegmentTenantError.self) {
            try SegmentPipelineGroup(transport: SimulatedNetwork(clock: SimulatedClock()), configuration: configuration)
            {
                _ in nil
            }
        }
    }

    // MARK: Status

    @Test func aTenantsStatusCountsItsRequestsWaitingForASlotAndNotTheOnesOnTheirWay() async throws {
        let clock = SimulatedClock()
        // Nobody is answered until released; one request in flight for the whole group.
        let network = SimulatedNetwork(clock: clock) { _, _ in nil }
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(maximumRequestsInFlight: 1, idleTimeout: nil))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let driver = Driver(clock: clock, network: network, group: group)
            try await group.record([TestMessages.message("a-0")], tenant: "a")
            try await group.record([TestMessages.message("b-0")], tenant: "b")
            // Past the linger, a's batch holds the one slot on the network and b's waits for it.
            let settled = await driver.run {
                let waiting = await group.statistics.requestsWaiting
                return network.heldCount == 1 && waiting == 1
            }
            #expect(settled)
            let holder = try #require(network.requests.first?.tenant)
            let waiter = holder == "a" ? "b" : "a"
            #expect(await group.status(of: holder)?.requestsWaiting == 0)
            #expect(await group.status(of: waiter)?.requestsWaiting == 1)
            network.release(holder)
            #expect(await driver.run { network.requestCount(of: waiter) == 1 })
            #expect(await group.status(of: waiter)?.requestsWaiting == 0)
            network.release(waiter)
            tasks.cancelAll()
        }
    }

    // MARK: Tenants come and go

    @Test func concurrentFirstUsesResolveATenantOnce() async throws {
        let clock = SimulatedClock()
        let resolved = Shared<[String]>([])
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network, resolved: resolved)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for index in 0..<20 {
                tasks.addTask { try await group.record([TestMessages.message("m\(index)")], tenant: "acme") }
            }
            try await tasks.waitForAll()
        }
        #expect(resolved.current == ["acme"])
        #expect(await group.status(of: "acme")?.counters.accepted == 20)
    }

    @Test func idleTenantsAreClosedAndOpenedAgainOnTheirNextRecord() async throws {
        let clock = SimulatedClock()
        let resolved = Shared<[String]>([])
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(idleTimeout: .seconds(60)), resolved: resolved)
        let driver = Driver(clock: clock, network: network, group: group)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // The sweeper looks every 60 s from the start: at 60 s, 120 s...
            while clock.sleeperCount < 1 { await Task.yield() }
            try await group.record([TestMessages.message("a-1")], tenant: "a")
            await driver.run(to: .seconds(30))
            try await group.record([TestMessages.message("b-1")], tenant: "b")
            await driver.run(to: .seconds(100))
            // b is busy at 30 s and again at 100 s, never idle for 60 s at a sweep; a has been idle since
            // just after 0 s.
            try await group.record([TestMessages.message("b-2")], tenant: "b")
            await driver.run(to: .seconds(125))
            #expect(await group.openTenants == ["b"])
            #expect(resolved.current == ["a", "b"])
            try await group.record([TestMessages.message("a-2")], tenant: "a")
            #expect(await group.openTenants == ["a", "b"])
            #expect(resolved.current == ["a", "b", "a"])
            tasks.cancelAll()
        }
    }

    // MARK: Lifecycle

    @Test func aGracefulShutdownDrainsEveryTenantAndThenRefusesMessages() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network)
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()
        let driver = Driver(clock: clock, network: network, group: group)
        let stopped = Shared(false)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await group.run()
                stopped.withLock { $0 = true }
            }
            tasks.addTask { await outcomes.collect(stream) }
            for tenant in ["a", "b", "c"] {
                try await group.record(contentsOf: TestMessages.units(50, tenant: tenant), tenant: tenant)
            }
            group.triggerGracefulShutdown()
            #expect(await driver.run { stopped.current })
            try await tasks.waitForAll()
        }
        for tenant in ["a", "b", "c"] { #expect(outcomes.delivered(tenant) == 50) }
        let error = await #expect(throws: SegmentTenantError.self) {
            try await group.record([TestMessages.message("late")], tenant: "a")
        }
        #expect(error?.code == .shutDown)
        #expect(error?.tenant == "a")
    }

    @Test func aShutdownPastItsGracePeriodHandsBackWhatIsLeft() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { tenant, _ in
            tenant == "down" ? SegmentResponse(statusCode: 503) : SimulatedNetwork.ok
        }
        let group = try Self.makeGroup(
            clock: clock, network: network, configuration: .init(idleTimeout: nil, gracePeriod: .seconds(5)))
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()
        let driver = Driver(clock: clock, network: network, group: group)
        let stopped = Shared(false)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await group.run()
                stopped.withLock { $0 = true }
            }
            tasks.addTask { await outcomes.collect(stream) }
            try await group.record(contentsOf: TestMessages.units(5, tenant: "down"), tenant: "down")
            try await group.record(contentsOf: TestMessages.units(5, tenant: "up"), tenant: "up")
            group.triggerGracefulShutdown()
            #expect(await driver.run { stopped.current })
            try await tasks.waitForAll()
        }
        #expect(outcomes.delivered("up") == 5)
        let handedBack = outcomes.messages(of: "down") { if case .handedBack = $0 { true } else { false } }
        #expect(handedBack == 5)
        #expect(clock.now < .seconds(6))
    }

    @Test func cancellingRunStopsAtOnceAndHandsBackByTenant() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SegmentResponse(statusCode: 503) }
        let group = try Self.makeGroup(clock: clock, network: network)
        let outcomes = OutcomeLog()
        let stream = await group.outcomes()
        let collecting = Task { await outcomes.collect(stream) }
        let running = Task { try await group.run() }
        for tenant in ["a", "b"] {
            try await group.record(contentsOf: TestMessages.units(4, tenant: tenant), tenant: tenant)
        }
        await Driver(clock: clock, network: network, group: group).settle()
        running.cancel()
        try await running.value
        await collecting.value
        for tenant in ["a", "b"] {
            let handedBack = outcomes.messages(of: tenant) { if case .handedBack = $0 { true } else { false } }
            #expect(handedBack == 4)
        }
        #expect(await group.statistics.bytes == 0)
    }

    @Test func runMayBeCalledOnce() async throws {
        let clock = SimulatedClock()
        let group = try Self.makeGroup(clock: clock, network: SimulatedNetwork(clock: clock))
        group.triggerGracefulShutdown()
        try await group.run()
        let error = await #expect(throws: SegmentTenantError.self) { try await group.run() }
        #expect(error?.code == .alreadyRunning)
    }

    @Test func eachTenantBuildsItsResponsesWithItsOwnSettings() async throws {
        let clock = SimulatedClock()
        let network = SimulatedNetwork(clock: clock) { _, _ in SimulatedNetwork.ok }
        let group = try Self.makeGroup(clock: clock, network: network) { tenant, settings in
            if tenant == "custom" { settings.builder.traitKeys.prefix = "survey_" }
        }
        let response = SurveyResponse(
            id: "r1", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: "u1"), account: nil,
            answers: [Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO")])
        let plain = try await group.record(response, profile: CollectedProfile(), tenant: "plain")
        let custom = try await group.record(response, profile: CollectedProfile(), tenant: "custom")
        #expect(plain.userTraits["refiner_what_is_your_job_role"] != nil)
        #expect(custom.userTraits["survey_what_is_your_job_role"] != nil)
    }
}
