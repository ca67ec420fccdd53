#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes a response in its usual JSON form while it scans the bytes, in one pass: no tokens, no second walk.
///
/// The fast path of `SurveyResponse(json:)` and `SurveyResponse(jsonOrRefinerWebhook:)`. It reads only what
/// a response of the usual shape holds (the members the `Codable` conformance writes, each at most once,
/// strings without escapes, no byte order mark, no trailing comma) and gives up (`nil`) at the first thing
/// it does not expect, without saying why: the caller then reads the same bytes with ``JSONTape`` and the
/// decoders on ``JSONReader``, so that the values of unusual documents and the words and positions of every
/// error are those of that path. Where it does return a response, it has checked the whole document as the
/// tape does (syntax, UTF-8, what each member must be), and the response is the one the tape's decoders make.
struct ResponseScanner {
    // Read by the JSON primitives in ResponseScanner+JSON.swift, hence not private.
    let base: UnsafePointer<UInt8>
    let count: Int
    /// The reading position.
    var at = 0
    /// The strings of ``RepeatedStrings`` to reuse where they repeat; nil: none.
    let repeated: UnsafeMutablePointer<String>?

    /// Something this scanner does not read: the caller reads the document the general way.
    struct Unusual: Error {}

    private init(base: UnsafePointer<UInt8>, count: Int, repeated: UnsafeMutablePointer<String>?) {
        self.base = base
        self.count = count
        self.repeated = repeated
    }

    /// The response in `bytes`, or nil when they are not a response of the usual shape (or not one at all).
    static func response(in bytes: UnsafeBufferPointer<UInt8>, repeated: RepeatedStrings?) -> SurveyResponse? {
        guard let base = bytes.baseAddress else { return nil }
        return withExtendedLifetime(repeated) {
            var scanner = ResponseScanner(base: base, count: bytes.count, repeated: repeated?.strings)
            return try? scanner.document()
        }
    }

    // MARK: The response's members

    private mutating func document() throws(Unusual) -> SurveyResponse {
        skipSpace()
        let response = try response()
        skipSpace()
        guard at == count else { throw Unusual() }
        return response
    }

    private mutating func response() throws(Unusual) -> SurveyResponse {
        var id: String?
        var completedAt: Date?
        var survey: Survey?
        var user: User?
        var account: Account?
        var answers: [Answer] = []
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            switch name.count {
            case 2 where isName(name, "id"):
                try once(&seen, 1)
                id = try string()
            case 11 where isName(name, "completedAt"):
                try once(&seen, 2)
                let text = try stringBytes()
                guard let date = Timestamp.date(fromUTF8: buffer(text)) else { throw Unusual() }
                completedAt = date
            case 6 where isName(name, "survey"):
                try once(&seen, 4)
                survey = try self.survey()
            case 4 where isName(name, "user"):
                try once(&seen, 8)
                user = try self.user()
            case 7 where isName(name, "account"):
                try once(&seen, 16)
                account = try isNull() ? nil : self.account()
            case 7 where isName(name, "answers"):
                try once(&seen, 32)
                if try !isNull() { answers = try self.answers() }
            default:
                throw Unusual()
            }
        }
        // Taken, not copied: `guard let` of a variable would copy each value (a retain of every string in it)
        // and then release the original.
        guard let id = id.take(), let completedAt, let survey = survey.take(), let user = user.take() else {
            throw Unusual()
        }
        return SurveyResponse(
            id: id, completedAt: completedAt, survey: survey, user: user, account: account, answers: answers)
    }

    private mutating func survey() throws(Unusual) -> Survey {
        var id: String?
        var name: String?
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let member = try nextMember(&isFirst) {
            if isName(member, "id") {
                try once(&seen, 1)
                id = try string(place: RepeatedStrings.Place.surveyID)
            } else if isName(member, "name") {
                try once(&seen, 2)
                name = try optionalString(place: RepeatedStrings.Place.surveyName)
            } else {
                throw Unusual()
            }
        }
        guard let id = id.take() else { throw Unusual() }
        return Survey(id: id, name: name.take())
    }

    private mutating func user() throws(Unusual) -> User {
        var user = User()
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            if isName(name, "id") {
                try once(&seen, 1)
                user.id = try optionalString()
            } else if isName(name, "anonymousId") {
                try once(&seen, 2)
                user.anonymousID = try optionalString()
            } else if isName(name, "email") {
                try once(&seen, 4)
                user.email = try optionalString()
            } else {
                throw Unusual()
            }
        }
        return user
    }

    private mutating func account() throws(Unusual) -> Account {
        var id: String?
        var traits = Traits()
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            if isName(name, "id") {
                try once(&seen, 1)
                id = try string()
            } else if isName(name, "traits") {
                try once(&seen, 2)
                if try !isNull() { traits = try self.traits() }
            } else {
                throw Unusual()
            }
        }
        guard let id = id.take() else { throw Unusual() }
        return Account(id: id, traits: traits)
    }

    /// An account's traits: `null` values skipped; a repeated name is unusual (the general path keeps the first).
    private mutating func traits() throws(Unusual) -> Traits {
        var traits = Traits()
        var names: [String] = []
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            let key = String(decoding: buffer(name), as: UTF8.self)
            guard !names.contains(key) else { throw Unusual() }
            names.append(key)
            if let value = try answerValue() { traits[key] = value }
        }
        return traits
    }

    private mutating func answers() throws(Unusual) -> [Answer] {
        var answers: [Answer] = []
        // Room for a typical survey at once, instead of growing through 1, 2, 4 and 8.
        answers.reserveCapacity(8)
        try expect(UInt8(ascii: "["))
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            at += 1
            return answers
        }
        while true {
            answers.append(try answer(position: answers.count))
            skipSpace()
            switch peek() {
            case UInt8(ascii: ","):
                at += 1
                skipSpace()
            case UInt8(ascii: "]"):
                at += 1
                return answers
            default:
                throw Unusual()
            }
        }
    }

    // Inlined into the loop over answers, as is `question`: called, each returned its value through a copy.
    @inline(__always)
    private mutating func answer(position: Int) throws(Unusual) -> Answer {
        var question: Question?
        var value: AnswerValue?
        var isDate = false
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            if isName(name, "question") {
                try once(&seen, 1)
                question = try self.question(places: RepeatedStrings.Place.question(position), isDate: &isDate)
            } else if isName(name, "value") {
                try once(&seen, 2)
                value = try answerValue()
            } else {
                throw Unusual()
            }
        }
        guard let question = question.take() else { throw Unusual() }
        if isDate, case .string(let text)? = value, let date = Timestamp.date(from: text) {
            value = .date(date)
        }
        return Answer(question: question, value: value.take())
    }

    /// A question; `isDate` tells whether its kind is ``Question/Kind/date`` (found from its bytes: comparing
    /// kinds compares strings).
    @inline(__always)
    private mutating func question(places: Int, isDate: inout Bool) throws(Unusual) -> Question {
        var id: String?
        var text: String?
        var propertyName: String?
        var attribution = Attribution.user
        var kind: Question.Kind?
        var seen: UInt8 = 0
        try expect(UInt8(ascii: "{"))
        var isFirst = true
        while let name = try nextMember(&isFirst) {
            switch name.count {
            case 2 where isName(name, "id"):
                try once(&seen, 1)
                id = try string(place: places)
            case 4 where isName(name, "text"):
                try once(&seen, 2)
                text = try string(place: places + 1)
            case 8 where isName(name, "property"):
                try once(&seen, 4)
                propertyName = try optionalString(place: places + 2)
            case 11 where isName(name, "attribution"):
                try once(&seen, 8)
                guard try !isNull() else { continue }
                let value = try stringBytes()
                if isName(value, "account") {
                    attribution = .account
                } else if !isName(value, "user") {
                    throw Unusual()
                }
            case 4 where isName(name, "kind"):
                try once(&seen, 16)
                guard try !isNull() else { continue }
                let name = try stringBytes()
                kind = self.kind(name)
                isDate = name.count == 4 && isName(name, "date")
            default:
                throw Unusual()
            }
        }
        guard let id = id.take(), let text = text.take() else { throw Unusual() }
        return Question(
            id: id, text: text, propertyName: propertyName.take(), attribution: attribution, kind: kind.take())
    }

    /// A question's kind: Refiner's own matched as bytes, any other name read as a `String`.
    private func kind(_ name: Range<Int>) -> Question.Kind {
        switch name.count {
        case 4 where isName(name, "text"): return .text
        case 4 where isName(name, "date"): return .date
        case 5 where isName(name, "email"): return .email
        case 6 where isName(name, "number"): return .number
        case 7 where isName(name, "boolean"): return .boolean
        case 13 where isName(name, "single_choice"): return .singleChoice
        case 15 where isName(name, "multiple_choice"): return .multipleChoice
        default: return Question.Kind(rawValue: String(decoding: buffer(name), as: UTF8.self))
        }
    }

    /// An answer's (or a trait's) value; nil for `null`.
    private mutating func answerValue() throws(Unusual) -> AnswerValue? {
        switch peek() {
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        case UInt8(ascii: "n"):
            try literal("null")
            return nil
        case UInt8(ascii: "t"):
            try literal("true")
            return .boolean(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .boolean(false)
        case UInt8(ascii: "["):
            at += 1
            var strings: [String] = []
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                at += 1
                return .strings(strings)
            }
            while true {
                guard peek() == UInt8(ascii: "\"") else { throw Unusual() }
                strings.append(try string())
                skipSpace()
                switch peek() {
                case UInt8(ascii: ","):
                    at += 1
                    skipSpace()
                case UInt8(ascii: "]"):
                    at += 1
                    return .strings(strings)
                default:
                    throw Unusual()
                }
            }
        default:
            throw Unusual()
        }
    }
}
