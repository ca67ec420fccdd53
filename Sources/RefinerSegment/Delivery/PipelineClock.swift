#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The pipeline's monotonic time: any `Clock` measured in `Duration`, seen as the time passed since the
/// pipeline was made, so the rest of the pipeline needs no generic instant type.
///
/// Deadlines, pauses, backoff, linger and the give-up bound are all on this clock. The wall clock is
/// separate (``SegmentPipeline/init(writeKey:transport:configuration:store:tenant:clock:wallClock:jitter:)``)
/// and used only where a wall time goes on the wire or comes from it: `sentAt` and HTTP-date `Retry-After`.
struct PipelineClock: Sendable {
    /// The time passed since the clock was made.
    let now: @Sendable () -> Duration
    /// Sleeps until `now()` reaches the deadline; throws when the task is cancelled.
    let sleepUntil: @Sendable (_ deadline: Duration) async throws -> Void

    init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let start = clock.now
        now = { start.duration(to: clock.now) }
        sleepUntil = { deadline in try await clock.sleep(until: start.advanced(by: deadline), tolerance: nil) }
    }

    /// Sleeps for a duration from now.
    func sleep(for duration: Duration) async throws {
        try await sleepUntil(now() + duration)
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}

extension Duration {
    /// `seconds` as a duration from 0 to `maximum`: NaN and negatives are zero, and anything at or past
    /// `maximum` (infinity too) is `maximum`. For intervals between wall-clock dates that came from a store or
    /// a peer, where `.seconds(_:)` would trap on a value past its range (about 1.7e20 s).
    static func seconds(clamping seconds: Double, to maximum: Duration) -> Duration {
        guard seconds > 0 else { return .zero }
        return seconds >= maximum.seconds ? maximum : .seconds(seconds)
    }
}

extension Date {
    func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
}
