#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The pipeline's sense of time: the wall-clock now (for `sentAt`, HTTP-date `Retry-After` and the retry
/// time bound) and a way to sleep.
///
/// Injected so that tests run retries, pauses and deadlines in virtual time (`RefinerSegmentTesting`'s
/// `VirtualClock`); ``system`` is the real one.
public struct DeliveryClock: Sendable {
    /// The current wall-clock time.
    public var now: @Sendable () -> Date
    /// Suspends for a duration. Must throw promptly when the calling task is cancelled: shutdown's
    /// deadline cancels sleeping retries.
    public var sleep: @Sendable (_ duration: Duration) async throws -> Void

    /// Creates a clock from its two functions.
    public init(
        now: @escaping @Sendable () -> Date,
        sleep: @escaping @Sendable (_ duration: Duration) async throws -> Void
    ) {
        self.now = now
        self.sleep = sleep
    }

    /// The system clock and `Task.sleep`.
    public static let system = DeliveryClock(
        now: { Date() },
        sleep: { duration in try await Task.sleep(for: duration) }
    )
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}

extension Date {
    func adding(_ duration: Duration) -> Date { addingTimeInterval(duration.seconds) }
}
