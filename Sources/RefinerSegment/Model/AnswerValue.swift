#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The typed value of an answer or a trait, as it goes on the wire.
///
/// Integers stay integers in JSON (`10`, never `10.0`); decimals are written in the shortest form that reads
/// back to the same `Double`; dates as ISO-8601 UTC strings with milliseconds. NaN and infinity cannot be
/// written as JSON and are rejected when a message is built.
public enum AnswerValue: Sendable, Hashable {
    /// Text: free text, a single choice, an email.
    case string(String)
    /// A whole number, such as an NPS score.
    case integer(Int64)
    /// A decimal number. Must be finite.
    case decimal(Double)
    /// Yes or no.
    case boolean(Bool)
    /// Several choices.
    case strings([String])
    /// A point in time, written as `2026-11-20T10:15:00.000Z`.
    case date(Date)
}

extension AnswerValue: Codable {
    /// Decodes a JSON string, number, boolean or array of strings. A number with an integral value that fits
    /// 64 bits becomes ``integer(_:)`` (`10`, `10.0` and `1e1` alike), any other ``decimal(_:)``. Dates arrive as strings; ``Answer``
    /// reads them as dates when the question's kind is ``Question/Kind/date``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .boolean(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .decimal(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String].self) {
            self = .strings(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "expected a string, a number that fits a Double, a boolean or an array of strings"
            )
        }
    }

    /// Encodes the value in its JSON form; a date as an ISO-8601 string with milliseconds.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .decimal(let value): try container.encode(value)
        case .boolean(let value): try container.encode(value)
        case .strings(let value): try container.encode(value)
        case .date(let value): try container.encode(Timestamp.string(from: value))
        }
    }
}

extension AnswerValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral
{
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer value.
    public init(integerLiteral value: Int64) { self = .integer(value) }
    /// A decimal value.
    public init(floatLiteral value: Double) { self = .decimal(value) }
    /// A boolean value.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
}
