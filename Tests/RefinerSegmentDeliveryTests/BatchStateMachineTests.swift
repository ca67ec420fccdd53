import Foundation
import Testing

@testable import RefinerSegment

/// The retry and split decisions, driven directly: no actor, no transport, no clock.
@Suite struct BatchStateMachineTests {
    let wallNow = Date(timeIntervalSince1970: 1_795_600_800)

    private func answer(
        _ machine: inout BatchStateMachine, _ status: Int, headers: [String: String] = [:], units: [Int] = [1],
        at now: Duration = .zero
    ) -> BatchStateMachine.Action {
        let count = units.last ?? 1
        return machine.received(
            SegmentResponse(statusCode: status, headerFields: headers), messages: 0..<count, unitEnds: units,
            now: now, wallNow: wallNow, bodyText: { nil }, location: { headers["Location"] })
    }

    @Test func backoffDoublesAndTheAttemptBoundFails() {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy(maximumAttempts: 4))
        var delays: [Duration] = []
        var now = Duration.zero
        while case .retry(let delay, false, _) = answer(&machine, 500, at: now) {
            delays.append(delay)
            now += delay
        }
        #expect(delays == [.milliseconds(500), .seconds(1), .seconds(2)])
        var once = BatchStateMachine(policy: .init(maximumAttempts: 1))
        guard case .fail(let reason) = answer(&once, 500) else {
            Issue.record("one attempt allowed: the first failure is final")
            return
        }
        #expect(reason.code == .attemptsExhausted)
        #expect(machine.retryCount == 3)
    }

    @Test func retryAfterPausesWithoutSpendingAttempts() {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy(maximumAttempts: 1))
        for _ in 0..<5 {
            guard case .retry(let delay, true, _) = answer(&machine, 429, headers: ["Retry-After": "7"]) else {
                Issue.record("a Retry-After pauses")
                return
            }
            #expect(delay == .seconds(7))
        }
        #expect(machine.failures == 0)
    }

    @Test func theTimeBoundCountsFromTheFirstFailure() {
        var machine = BatchStateMachine(
            policy: SegmentRetryPolicy(maximumAttempts: 100, maximumRetryDuration: .seconds(10)))
        guard case .retry = answer(&machine, 503, at: .seconds(100)) else {
            Issue.record("first retry")
            return
        }
        guard case .fail(let reason) = answer(&machine, 503, at: .milliseconds(109_500)) else {
            Issue.record("a retry past 10 s after the first failure gives up")
            return
        }
        #expect(reason.code == .retryTimeExhausted)
    }

    @Test(arguments: [400, 413])
    func aRefusedBatchOfSeveralUnitsSplitsBetweenUnitsNearTheMiddle(status: Int) {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy())
        guard case .split(let middle) = answer(&machine, status, units: [2, 4, 6, 8, 10]) else {
            Issue.record("split")
            return
        }
        #expect(middle == 4 || middle == 6)
        #expect(machine.retryCount == 0, "a split is not a retry")
    }

    @Test(arguments: [400, 413])
    func aSingleUnitIsNotSplit(status: Int) {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy())
        guard case .fail(let reason) = answer(&machine, status, units: [2]) else {
            Issue.record("fails")
            return
        }
        #expect(reason.code == .rejected)
    }

    @Test func otherRefusalsAreNotSplit() {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy())
        guard case .fail = answer(&machine, 401, units: [2, 4]) else {
            Issue.record("401 fails whole")
            return
        }
    }

    @Test(arguments: [301, 302, 303, 307, 308])
    func aRedirectFailsNamingTheLocation(status: Int) {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy())
        let action = answer(&machine, status, headers: ["Location": "https://elsewhere.example.com/v1/batch"])
        guard case .fail(let reason) = action else {
            Issue.record("a redirect fails")
            return
        }
        #expect(reason.code == .redirected)
        #expect(reason.statusCode == status)
        #expect(reason.description.contains("https://elsewhere.example.com/v1/batch"))
    }

    @Test func aPermanentTransportErrorFailsAtOnceWithTheError() {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy())
        let error = SegmentTransportError.permanent("TLS handshake failed")
        guard case .fail(let reason) = machine.threw(error, description: "\(error)", now: .zero) else {
            Issue.record("not retried")
            return
        }
        #expect(reason.code == .transportFailure)
        #expect(reason.underlying is SegmentTransportError)
        #expect(reason.underlyingDescription?.contains("TLS handshake failed") == true)
        guard case .retry = machine.threw(SegmentTransportError.retryable("reset"), description: "", now: .zero) else {
            Issue.record("a retryable transport error is retried")
            return
        }
    }

    @Test func aKeptScheduleResumesWhereItStopped() {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy(maximumRetryDuration: .seconds(60)))
        _ = answer(&machine, 500, at: .seconds(5))
        _ = answer(&machine, 500, at: .seconds(6))
        let kept = machine.retryState(now: .seconds(6), wallNow: wallNow, nextAttemptIn: .seconds(1))
        #expect(kept.failures == 2)
        #expect(kept.retryCount == 2)
        #expect(kept.firstFailure == wallNow.addingTimeInterval(-1))
        // A restart 30 s later, on a fresh monotonic clock.
        var resumed = BatchStateMachine(
            policy: machine.policy, resuming: kept, now: .zero, wallNow: wallNow.addingTimeInterval(30))
        #expect(resumed.retryCount == 2)
        guard case .fail(let reason) = answer(&resumed, 500, at: .seconds(28)) else {
            Issue.record("the 60 s bound counts the time before the restart")
            return
        }
        #expect(reason.code == .retryTimeExhausted)
    }

    @Test(arguments: [
        (0, 0, false, 0, BatchCut.Decision.idle), (5, 100, false, 0, .wait(until: .milliseconds(20))),
        (5, 100, true, 0, .cut), (10, 100, false, 0, .cut), (5, 1000, false, 0, .cut), (5, 100, false, 20, .cut),
    ])
    func lingerCutsFullBatchesAtOnceAndOthersWhenTheOldestHasWaited(
        messages: Int, bytes: Int, urgent: Bool, elapsedMilliseconds: Int, expected: BatchCut.Decision
    ) {
        let decision = BatchCut.decide(
            claimableMessages: messages, claimableBytes: bytes, maximumMessages: 10, maximumBytes: 1000,
            oldestSince: .zero, linger: .milliseconds(20), urgent: urgent,
            now: .milliseconds(elapsedMilliseconds))
        #expect(decision == expected)
    }

    @Test func noLingerCutsAtOnce() {
        let decision = BatchCut.decide(
            claimableMessages: 1, claimableBytes: 1, maximumMessages: 10, maximumBytes: 1000, oldestSince: .zero,
            linger: .zero, urgent: false, now: .zero)
        #expect(decision == .cut)
    }

    /// A schedule a store hands back may hold anything (a damaged or crafted file): a first failure 1e30 s
    /// ago or in the future, `Int.max` failures and retries, negative counts. Resuming never traps, and the
    /// next failure decides as the bounds say.
    @Test(arguments: [
        SegmentRetryState(failures: .max, retryCount: .max, firstFailure: Date(timeIntervalSinceReferenceDate: -1e30)),
        SegmentRetryState(failures: .max, retryCount: .max),
        SegmentRetryState(failures: 0, retryCount: 0, firstFailure: .distantPast),
        SegmentRetryState(failures: 0, retryCount: 0, firstFailure: Date(timeIntervalSinceReferenceDate: -1e300)),
    ])
    func aHostileResumedScheduleFailsOnItsNextFailureWithoutATrap(state: SegmentRetryState) {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy(), resuming: state, now: .zero, wallNow: wallNow)
        #expect(machine.retryCount <= BatchStateMachine.maximumRetryCount)
        guard case .fail = answer(&machine, 503) else {
            Issue.record("a spent budget fails on the next failure")
            return
        }
    }

    @Test(arguments: [
        SegmentRetryState(failures: -5, retryCount: -5, firstFailure: Date(timeIntervalSinceReferenceDate: 1e30)),
        SegmentRetryState(failures: Int.min, retryCount: Int.min),
    ])
    func aResumedScheduleWithNegativeOrFutureValuesStartsAfresh(state: SegmentRetryState) {
        var machine = BatchStateMachine(policy: SegmentRetryPolicy(), resuming: state, now: .zero, wallNow: wallNow)
        #expect(machine.retryCount == 0)
        guard case .retry(let delay, false, _) = answer(&machine, 503) else {
            Issue.record("a fresh schedule retries")
            return
        }
        #expect(delay == .milliseconds(500))
    }

    @Test(arguments: [(Double.nan, 0.0), (-1, 0), (1e30, 300), (.infinity, 300), (-Double.infinity, 0), (12.5, 12.5)])
    func secondsFromOutsideAreClamped(seconds: Double, expected: Double) {
        #expect(Duration.seconds(clamping: seconds, to: .seconds(300)) == .seconds(expected))
    }
}
