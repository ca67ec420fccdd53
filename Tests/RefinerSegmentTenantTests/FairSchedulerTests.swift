import Testing

@testable import RefinerSegment

/// The fair scheduler as a state machine, driven directly: no tasks, no clock.
@Suite struct FairSchedulerTests {
    private func scheduler(quantum: Int = 1_000, maximumInFlight: Int = 2) -> FairScheduler {
        FairScheduler(configuration: .init(quantum: quantum, maximumInFlight: maximumInFlight))
    }

    @Test func grantsUpToTheGlobalCapThenQueues() {
        var scheduler = scheduler(maximumInFlight: 2)
        let step1 = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        #expect(step1 == [.grant(1)])
        let step2 = scheduler.request(2, tenant: "b", bytes: 100, now: .zero)
        #expect(step2 == [.grant(2)])
        let step3 = scheduler.request(3, tenant: "c", bytes: 100, now: .zero)
        #expect(step3 == [])
        #expect(scheduler.inFlight == 2)
        #expect(scheduler.pendingCount == 1)
        let step4 = scheduler.complete(1, now: .zero)
        #expect(step4 == [.grant(3)])
    }

    @Test func oneRequestInFlightPerTenantKeepsItsOrder() {
        var scheduler = scheduler(maximumInFlight: 10)
        let step5 = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        #expect(step5 == [.grant(1)])
        let step6 = scheduler.request(2, tenant: "a", bytes: 100, now: .zero)
        #expect(step6 == [])
        let step7 = scheduler.request(3, tenant: "a", bytes: 100, now: .zero)
        #expect(step7 == [])
        let step8 = scheduler.complete(1, now: .zero)
        #expect(step8 == [.grant(2)])
        let step9 = scheduler.complete(2, now: .zero)
        #expect(step9 == [.grant(3)])
    }

    @Test func aTenantMayHaveMoreInFlightWhenItsPipelineSendsMore() {
        var scheduler = scheduler(maximumInFlight: 10)
        scheduler.register("a", weight: 1, maximumInFlight: 2)
        let step10 = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        #expect(step10 == [.grant(1)])
        let step11 = scheduler.request(2, tenant: "a", bytes: 100, now: .zero)
        #expect(step11 == [.grant(2)])
        let step12 = scheduler.request(3, tenant: "a", bytes: 100, now: .zero)
        #expect(step12 == [])
    }

    @Test func aRequestLargerThanTheQuantumWaitsForEnoughRounds() {
        // Quantum 100, one slot: a 350-byte request needs four rounds, in which the 100-byte tenant sends
        // about three and a half of its own, so both move the same bytes.
        let delivered = closedLoop(
            tenants: [("big1", 350, 1), ("big2", 350, 1), ("small1", 100, 1), ("small2", 100, 1)], maximumInFlight: 1,
            quantum: 100, completions: 2_000)
        let big = Double(delivered["big1"] ?? 0)
        let small = Double(delivered["small1"] ?? 0)
        #expect(abs(big / small - 1) <= 0.1, "big \(big), small \(small)")
    }

    @Test func aPauseSendsTheTenantsWaitingRequestsBackUntilItEnds() {
        var scheduler = scheduler(maximumInFlight: 10)
        scheduler.register("a", weight: 1, maximumInFlight: 1)
        let step13 = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        #expect(step13 == [.grant(1)])
        let step14 = scheduler.request(2, tenant: "a", bytes: 100, now: .zero)
        #expect(step14 == [])
        let step15 = scheduler.complete(1, now: .seconds(1), pause: .seconds(60))
        #expect(step15 == [.pause(2, until: .seconds(61))])
        #expect(scheduler.pausedUntil("a", now: .seconds(30)) == .seconds(61))
        let step16 = scheduler.request(3, tenant: "a", bytes: 100, now: .seconds(30))
        #expect(step16 == [.pause(3, until: .seconds(61))])
        // Other tenants go on meanwhile.
        let step17 = scheduler.request(4, tenant: "b", bytes: 100, now: .seconds(30))
        #expect(step17 == [.grant(4)])
        #expect(scheduler.pausedUntil("a", now: .seconds(61)) == nil)
        let step18 = scheduler.request(5, tenant: "a", bytes: 100, now: .seconds(61))
        #expect(step18 == [.grant(5)])
    }

    @Test func aPausedTenantHoldsNoSlotAndAnotherTakesIt() {
        var scheduler = scheduler(maximumInFlight: 1)
        let step19 = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        #expect(step19 == [.grant(1)])
        let step20 = scheduler.request(2, tenant: "b", bytes: 100, now: .zero)
        #expect(step20 == [])
        let step21 = scheduler.complete(1, now: .zero, pause: .seconds(60))
        #expect(step21 == [.grant(2)])
        let step22 = scheduler.request(3, tenant: "a", bytes: 100, now: .seconds(1))
        #expect(step22 == [.pause(3, until: .seconds(60))])
        #expect(scheduler.inFlight == 1)
    }

    @Test func cancellingAWaitingRequestWithdrawsIt() {
        var scheduler = scheduler(maximumInFlight: 1)
        _ = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        _ = scheduler.request(2, tenant: "b", bytes: 100, now: .zero)
        _ = scheduler.request(3, tenant: "c", bytes: 100, now: .zero)
        let step23 = scheduler.cancel(2, now: .zero)
        #expect(step23 == [])
        #expect(scheduler.pendingCount == 1)
        let step24 = scheduler.complete(1, now: .zero)
        #expect(step24 == [.grant(3)])
        // Cancelling a granted request frees its slot.
        _ = scheduler.request(4, tenant: "d", bytes: 100, now: .zero)
        let step25 = scheduler.cancel(3, now: .zero)
        #expect(step25 == [.grant(4)])
    }

    @Test func removingATenantNeedsItIdle() {
        var scheduler = scheduler()
        _ = scheduler.request(1, tenant: "a", bytes: 100, now: .zero)
        let removedBusy = scheduler.remove("a")
        #expect(!removedBusy)
        _ = scheduler.complete(1, now: .zero)
        let removedIdle = scheduler.remove("a")
        #expect(removedIdle)
        #expect(scheduler.grantedBytes(of: "a") == 0)
    }

    // MARK: Fairness in a closed loop

    /// Tenants that always have more to send, each asking again only after its request completes and
    /// after the scheduler has already handed the freed slot on (the worst case for a tenant with one batch
    /// in flight). Requests complete in the order they were granted.
    private func closedLoop(
        tenants: [(name: String, bytes: Int, weight: Int)],
        maximumInFlight: Int,
        quantum: Int,
        completions: Int
    ) -> [String: Int] {
        var scheduler = scheduler(quantum: quantum, maximumInFlight: maximumInFlight)
        var owner: [Int: (name: String, bytes: Int)] = [:]
        var inFlight: [Int] = []
        var next = 0
        func ask(_ tenant: (name: String, bytes: Int, weight: Int)) -> [FairScheduler.Decision] {
            next += 1
            owner[next] = (tenant.name, tenant.bytes)
            return scheduler.request(next, tenant: tenant.name, bytes: tenant.bytes, now: .zero)
        }
        func take(_ decisions: [FairScheduler.Decision]) {
            for case .grant(let ticket) in decisions { inFlight.append(ticket) }
        }
        for tenant in tenants { scheduler.register(tenant.name, weight: tenant.weight, maximumInFlight: 1) }
        for tenant in tenants { take(ask(tenant)) }
        var delivered: [String: Int] = [:]
        for _ in 0..<completions {
            let ticket = inFlight.removeFirst()
            let request = owner[ticket]!
            delivered[request.name, default: 0] += request.bytes
            take(scheduler.complete(ticket, now: .zero))
            take(ask(tenants.first { $0.name == request.name }!))
        }
        return delivered
    }

    @Test(arguments: [1, 2, 4])
    func tenantsUnderEqualLoadGetEqualBytes(maximumInFlight: Int) {
        let tenants = (0..<10).map { (name: "t\($0)", bytes: 50_000, weight: 1) }
        let delivered = closedLoop(
            tenants: tenants, maximumInFlight: maximumInFlight, quantum: 500_000, completions: 5_000)
        let total = delivered.values.reduce(0, +)
        for tenant in tenants {
            let share = Double(delivered[tenant.name] ?? 0) / Double(total)
            #expect(abs(share - 0.1) <= 0.01, "\(tenant.name): \(share)")
        }
    }

    @Test(arguments: [1, 2])
    func tenantsWithDifferentBatchSizesGetEqualBytes(maximumInFlight: Int) {
        // Batches from 20 KB to 65 KB: the small ones send more often, not fewer bytes.
        let tenants = (0..<10).map { (name: "t\($0)", bytes: 20_000 + 5_000 * $0, weight: 1) }
        let delivered = closedLoop(
            tenants: tenants, maximumInFlight: maximumInFlight, quantum: 500_000, completions: 5_000)
        let total = delivered.values.reduce(0, +)
        for tenant in tenants {
            let share = Double(delivered[tenant.name] ?? 0) / Double(total)
            #expect(abs(share - 0.1) <= 0.01, "\(tenant.name): \(share)")
        }
    }

    @Test(arguments: [1, 2])
    func weightsOneTwoFourGetBytesOneTwoFour(maximumInFlight: Int) {
        // Three tenants of each weight, so that the scheduler always has a choice to make.
        let tenants = (0..<9).map { (name: "t\($0)", bytes: 50_000, weight: [1, 2, 4][$0 % 3]) }
        let delivered = closedLoop(
            tenants: tenants, maximumInFlight: maximumInFlight, quantum: 100_000, completions: 7_000)
        let byWeight = Dictionary(grouping: tenants, by: \.weight).mapValues { group in
            group.reduce(0) { $0 + (delivered[$1.name] ?? 0) }
        }
        let unit = Double(byWeight[1] ?? 0)
        #expect(unit > 0)
        for weight in [2, 4] {
            let ratio = Double(byWeight[weight] ?? 0) / unit
            #expect(abs(ratio - Double(weight)) <= 0.1 * Double(weight), "weight \(weight): \(ratio)")
        }
    }
}
