#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// When a collected trait was answered: the completion time of the response that set it, and that
/// response's id, which breaks ties between responses completed at the same microsecond.
///
/// Collected traits are merged by this order, never by the order responses happen to be applied in, so a
/// late webhook retry or an old file replayed never overwrites a newer answer. The time is kept as whole
/// microseconds since 1970 (a compact, sortable integer: comparing two times costs one integer comparison
/// unless they are equal).
public struct AnswerTime: Sendable, Hashable, Comparable {
    /// Microseconds since 1970-01-01T00:00:00Z, rounded from the response's `completedAt`.
    public var microseconds: Int64
    /// The id of the response that gave the answer; compared by its UTF-8 bytes when the times are equal.
    public var responseID: String

    /// Creates a time from its parts.
    public init(microseconds: Int64, responseID: String) {
        self.microseconds = microseconds
        self.responseID = responseID
    }

    /// The time of an answer given in a response completed at `completedAt`.
    public init(completedAt: Date, responseID: String) {
        let interval = completedAt.timeIntervalSince1970
        // Validated responses have dates in the years 0000 to 9999; anything else is clamped, never trapped on.
        let micros = (interval.isFinite ? interval : 0) * 1_000_000
        self.microseconds = Int64(min(max(micros.rounded(), -9.2e18), 9.2e18))
        self.responseID = responseID
    }

    /// Earlier than every answer: what traits known without a time (the profiles' older form) count as.
    public static let distantPast = AnswerTime(microseconds: .min, responseID: "")

    /// Whether `lhs` was answered before `rhs`: by time, then by response id (UTF-8 byte order).
    public static func < (lhs: AnswerTime, rhs: AnswerTime) -> Bool {
        if lhs.microseconds != rhs.microseconds { return lhs.microseconds < rhs.microseconds }
        return lhs.responseID.utf8.lexicographicallyPrecedes(rhs.responseID.utf8)
    }

    /// Equal when both parts are, the response ids compared by their bytes (as `<` does).
    public static func == (lhs: AnswerTime, rhs: AnswerTime) -> Bool {
        lhs.microseconds == rhs.microseconds && lhs.responseID.utf8.elementsEqual(rhs.responseID.utf8)
    }

    /// Hashes the time and the bytes of the response id, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(microseconds)
        for byte in responseID.utf8 { hasher.combine(byte) }
    }
}

extension AnswerTime: Codable {
    enum CodingKeys: String, CodingKey {
        case at
        case response
    }

    /// Decodes `{"at": "2026-11-20T10:15:00.000000Z", "response": "resp_123"}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .at)
        guard let microseconds = Self.microseconds(from: text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .at, in: container,
                debugDescription: "'\(text)' is not a time such as 2026-11-20T10:15:00.000000Z")
        }
        self.microseconds = microseconds
        self.responseID = try container.decode(String.self, forKey: .response)
    }

    /// Encodes `{"at": "2026-11-20T10:15:00.000000Z", "response": "resp_123"}`: the time in UTC with
    /// microseconds, so it reads back exactly.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.string(fromMicroseconds: microseconds), forKey: .at)
        try container.encode(responseID, forKey: .response)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in integer arithmetic (no Double: exact for every year); the distant
    /// past is `-infinity`.
    static func string(fromMicroseconds micros: Int64) -> String {
        if micros == .min { return "-infinity" }
        let (seconds, fraction) = floorDivide(micros, 1_000_000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value < 0 ? -value : value)
            return (value < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(secondOfDay / 3600, 2) + ":"
            + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2) + "." + pad(fraction, 6) + "Z"
    }

    /// Reads what ``string(fromMicroseconds:)`` writes; `nil` for anything else.
    static func microseconds(from text: String) -> Int64? {
        if text == "-infinity" { return .min }
        let bytes = Array(text.utf8)
        guard bytes.count == 27, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            bytes[19] == UInt8(ascii: "."), bytes[26] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ start: Int, _ count: Int) -> Int64? {
            var value: Int64 = 0
            for byte in bytes[start..<start + count] {
                let digit = byte &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), let fraction = number(20, 6),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + fraction
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let quotient = value >= 0 ? value / divisor : (value - divisor + 1) / divisor
        return (quotient, value - quotient * divisor)
    }
}
