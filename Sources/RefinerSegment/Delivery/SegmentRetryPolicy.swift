#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Segment's cross-SDK retry contract for Tracking API answers, in one place: which statuses succeed,
/// which are dropped, which are retried, how long to wait, and when to give up.
///
/// | answer | what happens |
/// | --- | --- |
/// | 2xx | delivered |
/// | 400, 401, 403, 404, 413, 422, other 4xx; 501, 505 | failed at once, reported with the server's answer |
/// | 408, 410, 429, 460, other 5xx; a thrown transport error (connection, timeout) | retried |
///
/// Retries wait `baseDelay * 2^n` (n = 0 for the first retry), capped at ``maximumDelay``, with jitter. A
/// batch fails for good after ``maximumAttempts`` attempts or when the next retry would fall more than
/// ``maximumRetryDuration`` after its first failure, whichever comes first. A retried answer with a
/// `Retry-After` header (delta-seconds or an HTTP-date, capped at ``maximumRetryAfter``) pauses the whole
/// pipeline for that long instead, and does not count as an attempt; the time bound still holds, so a
/// server that answers 429 forever cannot hold a batch forever.
public struct SegmentRetryPolicy: Sendable, Hashable {
    /// What an HTTP status means for a batch.
    public enum Disposition: Sendable, Hashable {
        /// 2xx: delivered.
        case success
        /// Not retried: the batch fails and is reported.
        case drop
        /// Retried with backoff, or after `Retry-After`.
        case retry
    }

    /// The first retry's delay before jitter: 0.5 s.
    public var baseDelay: Duration
    /// The longest delay between attempts: 300 s.
    public var maximumDelay: Duration
    /// The most attempts for one batch, the first included: 100.
    public var maximumAttempts: Int
    /// The longest time from a batch's first failure to its last retry: 12 hours.
    public var maximumRetryDuration: Duration
    /// The longest `Retry-After` pause honoured: 300 s (a longer one is cut to this).
    public var maximumRetryAfter: Duration

    /// Creates a policy; the defaults are Segment's.
    public init(
        baseDelay: Duration = .milliseconds(500),
        maximumDelay: Duration = .seconds(300),
        maximumAttempts: Int = 100,
        maximumRetryDuration: Duration = .seconds(12 * 3600),
        maximumRetryAfter: Duration = .seconds(300)
    ) {
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
        self.maximumAttempts = maximumAttempts
        self.maximumRetryDuration = maximumRetryDuration
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// What a status means: success (2xx), drop, or retry.
    public static func disposition(forStatus status: Int) -> Disposition {
        switch status {
        case 200..<300: return .success
        case 408, 410, 429, 460: return .retry
        case 501, 505: return .drop
        case 500..<600: return .retry
        default: return .drop  // 1xx and 3xx reaching us are as unusable as 4xx; Segment never sends them.
        }
    }

    /// The delay before the retry that follows the `failures`-th failed attempt (1 for the first
    /// failure), before jitter: `baseDelay * 2^(failures - 1)`, at most ``maximumDelay``.
    public func backoff(afterFailures failures: Int) -> Duration {
        let exponent = max(0, min(failures - 1, 62))
        let seconds = baseDelay.seconds * Double(Int64(1) << Int64(exponent))
        return seconds >= maximumDelay.seconds ? maximumDelay : .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The pause a `Retry-After` value asks for, capped at ``maximumRetryAfter``; `nil` when the value is
    /// missing, unreadable, or asks for no pause at all (then the ordinary backoff applies, so a server
    /// that keeps answering `Retry-After: 0` cannot make the pipeline spin).
    ///
    /// - Parameters:
    ///   - value: delta-seconds (`3`) or an HTTP-date (`Wed, 25 Nov 2026 10:15:00 GMT`).
    ///   - now: The time the answer arrived, to turn a date into a delay.
    public func retryAfter(_ value: String?, now: Date) -> Duration? {
        guard let value = value?.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "),
            !value.isEmpty
        else { return nil }
        let seconds: Double
        if let delta = Int(value) {
            seconds = Double(delta)
        } else if let date = HTTPDate.date(from: value) {
            seconds = date.timeIntervalSince(now).rounded(.up)
        } else {
            return nil
        }
        guard seconds > 0 else { return nil }
        return seconds >= maximumRetryAfter.seconds ? maximumRetryAfter : .seconds(Int64(seconds))
    }

    /// Checks that the bounds make sense.
    func validate() throws(SegmentDeliveryError) {
        guard maximumAttempts >= 1, baseDelay >= .zero, maximumDelay >= .zero, maximumRetryDuration >= .zero,
            maximumRetryAfter >= .zero
        else {
            throw SegmentDeliveryError(
                code: .invalidConfiguration,
                detail: "the retry policy needs at least one attempt and no negative durations"
            )
        }
    }
}

/// The IMF-fixdate form of an HTTP-date (RFC 9110): `Sun, 06 Nov 1994 08:49:37 GMT`, the only form
/// servers may send; the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) is read too.
enum HTTPDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    static func date(from text: String) -> Date? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        var day: Substring
        var month: Substring
        var year: Substring
        var time: Substring
        if parts.count == 6, parts[5] == "GMT" {
            (day, month, year, time) = (parts[1], parts[2], parts[3], parts[4])
        } else if parts.count == 4, parts[3] == "GMT" {
            let fields = parts[1].split(separator: "-")
            guard fields.count == 3, let short = Int(fields[2]) else { return nil }
            (day, month, time) = (fields[0], fields[1], parts[2])
            year = Substring(String(short < 70 ? 2000 + short : 1900 + short))
        } else {
            return nil
        }
        guard let monthIndex = months.firstIndex(of: month.lowercased()), day.count == 2, year.count == 4,
            time.count == 8
        else { return nil }
        let monthText = monthIndex < 9 ? "0\(monthIndex + 1)" : "\(monthIndex + 1)"
        return Timestamp.date(from: "\(year)-\(monthText)-\(day)T\(time)Z")
    }
}
