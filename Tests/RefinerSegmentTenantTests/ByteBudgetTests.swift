import Testing

@testable import RefinerSegment

/// The group's byte bound as a state machine: who gets room, who waits, who goes first when room frees.
@Suite struct ByteBudgetTests {
    @Test func unitsGoInWhileTheyFitThenWait() {
        var budget = ByteBudget(limit: 1_000)
        let step1 = budget.reserve(1, tenant: "a", bytes: 600)
        #expect(step1)
        let step2 = budget.reserve(2, tenant: "b", bytes: 600)
        #expect(!step2)
        #expect(budget.used == 600)
        #expect(budget.waitingCount == 1)
        let admitted = budget.release(600, tenant: "a")
        #expect(admitted == [2])
        #expect(budget.bytes(of: "b") == 600)
        #expect(budget.bytes(of: "a") == 0)
    }

    @Test func oneTenantAloneMayUseTheWholeBound() {
        var budget = ByteBudget(limit: 1_000)
        for ticket in 1...10 {
            let admitted3 = budget.reserve(ticket, tenant: "a", bytes: 100)
            #expect(admitted3)
        }
        let step4 = budget.reserve(11, tenant: "a", bytes: 100)
        #expect(!step4)
    }

    @Test func aTenantOverItsShareWaitsWhileAnotherIsLetIn() {
        var budget = ByteBudget(limit: 1_000)
        let step5 = budget.reserve(1, tenant: "backlog", bytes: 900)
        #expect(step5)
        // The bound is nearly full: the newcomer waits, and so does the backlog's next unit.
        let step6 = budget.reserve(2, tenant: "quiet", bytes: 200)
        #expect(!step6)
        let step7 = budget.reserve(3, tenant: "backlog", bytes: 100)
        #expect(!step7)
        // The backlog frees 300: the quiet tenant goes in; the backlog, holding more than half, still waits.
        let first = budget.release(300, tenant: "backlog")
        #expect(first == [2])
        // Once the backlog is under its half, its unit goes in.
        let second = budget.release(200, tenant: "backlog")
        #expect(second == [3])
    }

    @Test func aTenantHoldingNothingMayTakeAUnitLargerThanItsShare() {
        var budget = ByteBudget(limit: 1_000)
        let step8 = budget.reserve(1, tenant: "a", bytes: 100)
        #expect(step8)
        let step9 = budget.reserve(2, tenant: "b", bytes: 100)
        #expect(step9)
        let step10 = budget.reserve(3, tenant: "c", bytes: 100)
        #expect(step10)
        // Four active tenants: the share is 250, but d holds nothing, so its 600-byte unit goes in.
        let step11 = budget.reserve(4, tenant: "d", bytes: 600)
        #expect(step11)
        let step12 = budget.reserve(5, tenant: "d", bytes: 100)
        #expect(!step12)
    }

    @Test func freedRoomGoesRoundRobinAcrossWaitingTenants() {
        var budget = ByteBudget(limit: 1_000)
        let step13 = budget.reserve(1, tenant: "full", bytes: 1_000)
        #expect(step13)
        // a waits with three units, b and c with one each.
        let step14 = budget.reserve(10, tenant: "a", bytes: 100)
        #expect(!step14)
        let step15 = budget.reserve(11, tenant: "a", bytes: 100)
        #expect(!step15)
        let step16 = budget.reserve(12, tenant: "a", bytes: 100)
        #expect(!step16)
        let step17 = budget.reserve(20, tenant: "b", bytes: 100)
        #expect(!step17)
        let step18 = budget.reserve(30, tenant: "c", bytes: 100)
        #expect(!step18)
        let admitted = budget.release(300, tenant: "full")
        #expect(admitted == [10, 20, 30])
    }

    @Test func aUnitWaitsBehindItsOwnTenantsEarlierUnits() {
        var budget = ByteBudget(limit: 1_000)
        let step19 = budget.reserve(1, tenant: "a", bytes: 950)
        #expect(step19)
        let step20 = budget.reserve(2, tenant: "a", bytes: 500)
        #expect(!step20)
        // 50 bytes would fit, but a's earlier unit waits: order within a tenant is kept.
        let step21 = budget.reserve(3, tenant: "a", bytes: 50)
        #expect(!step21)
        let admitted = budget.release(950, tenant: "a")
        #expect(admitted == [2, 3])
    }

    @Test func cancellingAWaitingUnitLetsTheNextIn() {
        var budget = ByteBudget(limit: 1_000)
        let step22 = budget.reserve(1, tenant: "a", bytes: 500)
        #expect(step22)
        let step23 = budget.reserve(2, tenant: "b", bytes: 800)
        #expect(!step23)
        let step24 = budget.reserve(3, tenant: "b", bytes: 100)
        #expect(!step24)
        let cancelled = budget.cancel(2)
        #expect(cancelled.wasWaiting)
        #expect(cancelled.admitted == [3])
        let step25 = budget.cancel(2).wasWaiting
        #expect(!step25)
    }

    @Test func releasingMoreThanHeldHoldsNothing() {
        var budget = ByteBudget(limit: 1_000)
        let step26 = budget.reserve(1, tenant: "a", bytes: 100)
        #expect(step26)
        _ = budget.release(500, tenant: "a")
        #expect(budget.used == 0)
        #expect(budget.bytes(of: "a") == 0)
    }
}
