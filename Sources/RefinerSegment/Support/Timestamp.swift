#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// ISO-8601 timestamps as Segment wants them, without DateFormatter: a byte loop both ways.
enum Timestamp {
    /// The length of a timestamp: `2026-11-20T10:15:00.000Z`.
    static let byteCount = 24

    /// `2026-11-20T10:15:00.000Z`. The date must be representable (see ``isRepresentable(_:)``).
    static func string(from date: Date) -> String {
        String(unsafeUninitializedCapacity: byteCount) { buffer in
            write(date, to: buffer.baseAddress!)
            return byteCount
        }
    }

    /// The years a four-digit ISO-8601 timestamp can carry.
    static func isRepresentable(_ date: Date) -> Bool {
        let seconds = date.timeIntervalSince1970
        return seconds.isFinite && seconds >= -62_167_219_200 && seconds < 253_402_300_800
    }

    /// Writes the 24 bytes of `YYYY-MM-DDTHH:MM:SS.mmmZ`, milliseconds truncated. The date must be
    /// representable.
    static func write(_ date: Date, to output: UnsafeMutablePointer<UInt8>) {
        // Dates are validated before messages are built; a clock gone wrong (the batch's `sentAt`) is clamped
        // to the representable range rather than trapping: NaN reads as the epoch.
        var interval = date.timeIntervalSince1970
        if !isRepresentable(date) {
            interval = interval.isNaN ? 0 : min(max(interval, -62_167_219_200), 253_402_300_799.999)
        }
        // Round to the microsecond first so that a time read as `.123000` is not written as `.122`.
        let micros = Int64((interval * 1_000_000).rounded())
        let millis = micros >= 0 ? micros / 1000 : (micros - 999) / 1000
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let millisecond = Int(millis - seconds * 1000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civil(fromDays: days)
        // Two digits at a time, no loop: this runs for every response built and every batch sent.
        func pair(_ value: Int, at offset: Int) {
            output[offset] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value / 10)
            output[offset + 1] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10)
        }
        pair(year / 100, at: 0)
        pair(year % 100, at: 2)
        output[4] = UInt8(ascii: "-")
        pair(month, at: 5)
        output[7] = UInt8(ascii: "-")
        pair(day, at: 8)
        output[10] = UInt8(ascii: "T")
        pair(secondOfDay / 3600, at: 11)
        output[13] = UInt8(ascii: ":")
        pair(secondOfDay / 60 % 60, at: 14)
        output[16] = UInt8(ascii: ":")
        pair(secondOfDay % 60, at: 17)
        output[19] = UInt8(ascii: ".")
        output[20] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: millisecond / 100)
        pair(millisecond % 100, at: 21)
        output[23] = UInt8(ascii: "Z")
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM|±HHMM]`; a space may stand for the `T`, and no
    /// offset means UTC (Refiner's older payloads: `2020-09-02 21:53:33`). `nil` for anything else.
    static func date(from string: String) -> Date? {
        // A native string lends its bytes; no copy of them, no array.
        if let date = string.utf8.withContiguousStorageIfAvailable({ parse($0) }) { return date }
        return Array(string.utf8).withUnsafeBufferPointer { parse($0) }
    }

    /// ``date(from:)`` of UTF-8 bytes, such as a string token of the JSON reader, without making a `String`.
    static func date(fromUTF8 bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        parse(bytes)
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Date? {
        var index = 0
        func number(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int(digit)
                index += 1
            }
            return value
        }
        // Bytes, not a `String` of characters to look in: the generic search cost more than the whole parse.
        func expect(_ byte: UInt8, or other: UInt8? = nil, or third: UInt8? = nil) -> Bool {
            guard index < bytes.count else { return false }
            let found = bytes[index]
            guard found == byte || found == other || found == third else { return false }
            index += 1
            return true
        }
        let dash = UInt8(ascii: "-")
        let colon = UInt8(ascii: ":")
        guard let year = number(4), expect(dash), let month = number(2), expect(dash), let day = number(2),
            expect(UInt8(ascii: "T"), or: UInt8(ascii: "t"), or: UInt8(ascii: " ")), let hour = number(2),
            expect(colon), let minute = number(2), expect(colon), let second = number(2)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        var micros = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: ",") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 {
                if digits < 6 { micros = micros * 10 + Int(bytes[index] &- UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { micros *= 10 }
        }
        var offsetSeconds = 0
        if index < bytes.count {
            if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                index += 1
                guard let offsetHours = number(2) else { return nil }
                _ = expect(colon)
                guard let offsetMinutes = number(2), offsetHours < 24, offsetMinutes < 60 else { return nil }
                offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
            }
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil and civil-from-days (proleptic Gregorian calendar).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}
