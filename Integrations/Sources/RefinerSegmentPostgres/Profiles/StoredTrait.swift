import Foundation
import RefinerSegment

/// One row of `refiner_segment_profile_traits`: a trait (or the email) of a user or an account, with its time.
struct StoredTrait: Sendable, Hashable {
    /// `user`, `anonymous` or `account`.
    var scope: String
    /// The user id, anonymous id or account id.
    var ownerID: String
    /// The trait key, or ``emailKey``.
    var key: String
    /// How `value` reads back: `string`, `integer`, `decimal`, `boolean`, `strings`, `date`.
    var kind: String
    /// The value as JSON text (a date as milliseconds since 1970).
    var value: String
    /// The answer's completion time, microseconds since 1970.
    var answeredMicroseconds: Int64
    /// The answer's response id.
    var responseID: String

    /// The key of the user's email row; trait keys match `^[a-z0-9_]+$`, so it never collides with one.
    static let emailKey = "$email"

    init(
        scope: String,
        ownerID: String,
        key: String,
        kind: String,
        value: String,
        answeredMicroseconds: Int64,
        responseID: String
    ) {
        self.scope = scope
        self.ownerID = ownerID
        self.key = key
        self.kind = kind
        self.value = value
        self.answeredMicroseconds = answeredMicroseconds
        self.responseID = responseID
    }

    init(
        scope: String, ownerID: String, key: String, value: AnswerValue, answeredMicroseconds: Int64, responseID: String
    ) {
        let (kind, json) = Self.encode(value)
        self.init(
            scope: scope,
            ownerID: ownerID,
            key: key,
            kind: kind,
            value: json,
            answeredMicroseconds: answeredMicroseconds,
            responseID: responseID
        )
    }

    /// The value read back; `nil` when the row holds something this version cannot read.
    var answerValue: AnswerValue? {
        let data = Data(("[" + value + "]").utf8)
        let decoder = JSONDecoder()
        switch kind {
        case "string": return (try? decoder.decode([String].self, from: data)).flatMap(\.first).map { .string($0) }
        case "integer": return (try? decoder.decode([Int64].self, from: data)).flatMap(\.first).map { .integer($0) }
        case "decimal": return (try? decoder.decode([Double].self, from: data)).flatMap(\.first).map { .decimal($0) }
        case "boolean": return (try? decoder.decode([Bool].self, from: data)).flatMap(\.first).map { .boolean($0) }
        case "strings":
            return (try? decoder.decode([[String]].self, from: data)).flatMap(\.first).map { .strings($0) }
        case "date":
            return (try? decoder.decode([Double].self, from: data)).flatMap(\.first)
                .map { .date(Date(timeIntervalSince1970: $0 / 1000)) }
        default: return nil
        }
    }

    /// The kind and JSON text of a value. Numbers are exact: integers as integers, decimals in Swift's shortest
    /// form that reads back to the same `Double` (non-finite ones never reach a profile: the builder rejects them).
    static func encode(_ value: AnswerValue) -> (kind: String, json: String) {
        let encoder = JSONEncoder()
        func json(_ value: some Encodable) -> String {
            // Encoding a string or an array of strings cannot fail.
            let data = (try? encoder.encode([value])) ?? Data("[null]".utf8)
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        switch value {
        case .string(let text): return ("string", json(text))
        case .integer(let number): return ("integer", String(number))
        case .decimal(let number): return ("decimal", number.isFinite ? "\(number)" : "0")
        case .boolean(let flag): return ("boolean", flag ? "true" : "false")
        case .strings(let texts): return ("strings", json(texts))
        case .date(let date): return ("date", "\((date.timeIntervalSince1970 * 1000).rounded())")
        }
    }
}
