#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The decisions about one batch, apart from any I/O: given what an attempt got back, deliver, fail, split
/// or retry, and when. The pipeline's actor only sends and waits; tests drive this type directly.
///
/// Time comes in as values: `now` on the pipeline's monotonic clock, `wallNow` only to read an HTTP-date
/// `Retry-After` and to keep the schedule in a store across restarts.
struct BatchStateMachine {
    /// What to do after an attempt.
    enum Action {
        /// 2xx: the batch is delivered.
        case delivered(statusCode: Int)
        /// The batch fails for good, for this reason.
        case fail(SegmentDeliveryError)
        /// 400 or 413 on several units: send the part before `at` and the part from `at` each on its own
        /// (not a retry), halves split between units, so a poisoned unit fails alone.
        case split(at: Int)
        /// Try again after `delay`; `pausesPipeline` when a `Retry-After` asked for it (the whole pipeline
        /// waits, and the attempt budget is not spent).
        case retry(after: Duration, pausesPipeline: Bool, reason: SegmentDeliveryError)
    }

    let policy: SegmentRetryPolicy
    /// Failed attempts that count against ``SegmentRetryPolicy/maximumAttempts``.
    private(set) var failures = 0
    /// The `X-Retry-Count` of the next attempt.
    private(set) var retryCount = 0
    /// When the first failure happened, on the monotonic clock.
    private(set) var firstFailure: Duration?

    init(policy: SegmentRetryPolicy) {
        self.policy = policy
    }

    /// Resumes a schedule a store kept (after a restart, or for a released claim).
    ///
    /// The state comes from outside (a file, a database row), so every value is brought into range: counts
    /// into what the policy could have reached (a count past the attempt bound fails the next failure, as it
    /// would have), and a first failure longer ago than the time bound counts as just past it.
    init(policy: SegmentRetryPolicy, resuming state: SegmentRetryState, now: Duration, wallNow: Date) {
        self.policy = policy
        failures = min(max(0, state.failures), max(0, policy.maximumAttempts - 1))
        retryCount = min(max(0, state.retryCount), Self.maximumRetryCount)
        let longest = min(policy.maximumRetryDuration, Self.longestResumedInterval) + .seconds(1)
        firstFailure = state.firstFailure.map {
            now - .seconds(clamping: wallNow.timeIntervalSince($0), to: longest)
        }
    }

    /// The largest `X-Retry-Count` a resumed schedule keeps, so counting on never overflows.
    static let maximumRetryCount = Int(Int32.max)
    /// The longest a resumed first failure lies in the past (about 31,700 years), so `now` less it never
    /// overflows, whatever the policy's time bound.
    static let longestResumedInterval = Duration.seconds(Int64(1) << 40)

    /// The schedule as a store keeps it, with the next attempt due `delay` from now.
    func retryState(now: Duration, wallNow: Date, nextAttemptIn delay: Duration) -> SegmentRetryState {
        SegmentRetryState(
            failures: failures, retryCount: retryCount,
            firstFailure: firstFailure.map { wallNow.adding($0 - now) }, nextAttempt: wallNow.adding(delay))
    }

    /// Decides on a server's answer.
    ///
    /// - Parameters:
    ///   - messages: The messages of the claim this attempt sent.
    ///   - unitEnds: Where the claim's units end (``SegmentClaim/unitEnds``): a part of one unit is never
    ///     split.
    ///   - bodyText: The answer's start as redacted text, computed only when a reason needs it.
    ///   - location: The `Location` header, redacted, for a redirect.
    mutating func received(
        _ response: SegmentResponse,
        messages: Range<Int>,
        unitEnds: [Int],
        now: Duration,
        wallNow: Date,
        bodyText: () -> String?,
        location: () -> String?
    ) -> Action {
        let status = response.statusCode
        if (300..<400).contains(status) {
            let target = location().map { "to '\($0)'" } ?? "without a Location header"
            return .fail(
                SegmentDeliveryError(
                    code: .redirected, statusCode: status, responseBody: bodyText(),
                    detail: "the server redirected \(target), which is never followed: check the endpoint"))
        }
        switch SegmentRetryPolicy.disposition(forStatus: status) {
        case .success:
            return .delivered(statusCode: status)
        case .drop:
            if status == 400 || status == 413, let middle = Self.split(messages, unitEnds: unitEnds) {
                return .split(at: middle)
            }
            return .fail(
                SegmentDeliveryError(
                    code: .rejected, statusCode: status, responseBody: bodyText(),
                    detail: "the server refused the batch, which is not retried"))
        case .retry:
            let reason = SegmentDeliveryError(code: .retryableStatus, statusCode: status, responseBody: bodyText())
            let pause = policy.retryAfter(response.headerField("Retry-After"), now: wallNow)
            return retry(after: reason, pause: pause, now: now)
        }
    }

    /// Decides on a transport's error (not a cancellation: the pipeline handles that).
    ///
    /// - Parameter description: The error in words, redacted.
    mutating func threw(_ error: any Error, description: String, now: Duration) -> Action {
        let reason = SegmentDeliveryError(
            code: .transportFailure, underlyingDescription: description, underlying: error)
        if let transportError = error as? SegmentTransportError, !transportError.isRetryable {
            var final = reason
            final.detail = "the transport says that sending again cannot succeed"
            return .fail(final)
        }
        return retry(after: reason, pause: nil, now: now)
    }

    private mutating func retry(after failure: SegmentDeliveryError, pause: Duration?, now: Duration) -> Action {
        let start = firstFailure ?? now
        firstFailure = start
        let delay: Duration
        if let pause {
            delay = pause
        } else {
            failures += 1
            if failures >= policy.maximumAttempts {
                return .fail(exhausted(.attemptsExhausted, failure, "gave up after \(failures) attempts"))
            }
            delay = policy.backoff(afterFailures: failures)
        }
        if now + delay > start + policy.maximumRetryDuration {
            return .fail(
                exhausted(
                    .retryTimeExhausted, failure,
                    "the next retry would come more than \(Int(policy.maximumRetryDuration.seconds)) s "
                        + "after the first failure"))
        }
        retryCount += 1
        return .retry(after: delay, pausesPipeline: pause != nil, reason: failure)
    }

    /// The unit boundary nearest the middle of `range`, strictly inside it; `nil` for a single unit.
    static func split(_ range: Range<Int>, unitEnds: [Int]) -> Int? {
        let middle = range.lowerBound + range.count / 2
        var best: Int?
        for end in unitEnds where end > range.lowerBound && end < range.upperBound {
            if best.map({ abs(end - middle) < abs($0 - middle) }) ?? true { best = end }
        }
        return best
    }

    /// Applies jitter to a backoff the machine chose, keeping the time bound: a jittered delay is never
    /// longer than the one the bound was checked against.
    static func jittered(_ action: Action, _ jitter: (Duration) -> Duration) -> Action {
        guard case .retry(let delay, false, let reason) = action else { return action }
        return .retry(after: min(delay, max(.zero, jitter(delay))), pausesPipeline: false, reason: reason)
    }

    private func exhausted(
        _ code: SegmentDeliveryError.Code,
        _ last: SegmentDeliveryError,
        _ detail: String
    ) -> SegmentDeliveryError {
        SegmentDeliveryError(
            code: code, statusCode: last.statusCode, responseBody: last.responseBody,
            underlyingDescription: last.underlyingDescription, underlying: last.underlying,
            detail: detail + "; last failure: " + last.code.description)
    }
}

/// When to cut the next batch: at once when a full batch waits, when the oldest message has waited the
/// linger time, or when someone waits for everything (a flush, a shutdown); otherwise wait. Pure.
enum BatchCut {
    /// What a worker does now.
    enum Decision: Equatable {
        /// Nothing to send: wait for messages.
        case idle
        /// Claim a batch now.
        case cut
        /// Wait until this time (or until more messages make a batch full).
        case wait(until: Duration)
    }

    static func decide(
        claimableMessages: Int,
        claimableBytes: Int,
        maximumMessages: Int,
        maximumBytes: Int,
        oldestSince: Duration?,
        linger: Duration,
        urgent: Bool,
        now: Duration
    ) -> Decision {
        guard claimableMessages > 0 else { return .idle }
        if urgent || linger <= .zero || claimableMessages >= maximumMessages || claimableBytes >= maximumBytes {
            return .cut
        }
        let due = (oldestSince ?? now) + linger
        return due <= now ? .cut : .wait(until: due)
    }
}
