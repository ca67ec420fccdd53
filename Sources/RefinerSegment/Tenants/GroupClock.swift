#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A ``SegmentPipelineGroup``'s time: monotonic `Duration`s since the group was made (for pauses and idle
/// tenants), and the wall clock for `Retry-After` dates.
///
/// The group's one contact with the pipeline's clock type, so that moving the pipeline to another clock
/// changes this file only.
struct GroupClock: Sendable {
    /// The time passed since the clock was made.
    let now: @Sendable () -> Duration
    /// Sleeps until ``now`` reaches `deadline`; throws when the task is cancelled.
    let sleepUntil: @Sendable (_ deadline: Duration) async throws -> Void
    /// The wall-clock time.
    let wallNow: @Sendable () -> Date

    init<C: Clock>(_ clock: C, wallClock: @escaping @Sendable () -> Date) where C.Duration == Duration {
        let start = clock.now
        now = { start.duration(to: clock.now) }
        sleepUntil = { deadline in try await clock.sleep(until: start.advanced(by: deadline), tolerance: nil) }
        wallNow = wallClock
    }

    /// Sleeps for a duration from now.
    func sleep(for duration: Duration) async throws {
        try await sleepUntil(now() + duration)
    }
}
