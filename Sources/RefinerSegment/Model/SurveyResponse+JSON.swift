#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SurveyResponse {
    /// Reads a response from its JSON form (one line of the CLI's JSON Lines input).
    ///
    /// Read by the library's own JSON reader, not `JSONDecoder`; the result and the errors are those of the
    /// `Codable` conformance (which stays, for hosts that embed responses in their own types), and numbers are
    /// exact: an integral answer such as `9007199254740993` stays that integer.
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidInput`` that names the
    ///   field that is missing or wrong (`answers[2].question.text`), or says the bytes are not JSON and where
    ///   (invalid UTF-8 and a nesting deeper than 512 levels included).
    @inlinable
    public init(json: some Collection<UInt8>) throws(RefinerSegmentError) {
        // Inlined into the caller, so that a byte array (or any contiguous bytes) goes straight to the
        // non-generic reader: the generic body, called from another module, ran unspecialized.
        let result =
            json.withContiguousStorageIfAvailable(Self.read(json:))
            ?? Array(json).withUnsafeBufferPointer(Self.read(json:))
        self = try result.get()
    }

    /// The response in `json` (the reader of ``init(json:)``), or the error.
    @usableFromInline
    static func read(json: UnsafeBufferPointer<UInt8>) -> Result<SurveyResponse, RefinerSegmentError> {
        // The usual shape decodes while it is scanned; anything else (and every error) goes the general way.
        if let response = ResponseScanner.response(in: json, repeated: nil) { return .success(response) }
        do throws(JSONDecodingError) {
            return .success(
                try JSONReader.withDocument(buffer: json) { reader throws(JSONDecodingError) in
                    try SurveyResponse(reader, JSONReader.root)
                })
        } catch {
            return .failure(RefinerSegmentError(code: .invalidInput, detail: error.detail))
        }
    }

    /// Decodes the response at `index`, as ``init(from:)`` does.
    init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        try reader.check(index, is: .object, expected: "an object")
        // One walk of the members finds all six; they are then checked in the `Codable` decoder's order.
        let found = reader.members(("id", "completedAt", "survey", "user", "account", "answers"), of: index)
        let id = try reader.requiredString(at: found.0, "id")
        // Read from its bytes: the text becomes a `String` only for the error.
        let completedAtIndex = try reader.requiredStringIndex(at: found.1, "completedAt")
        guard let completedAt = reader.date(completedAtIndex) else {
            let completedAtText = reader.string(completedAtIndex)
            throw JSONDecodingError(
                .invalid("'\(completedAtText)' is not an ISO-8601 date-time such as 2026-11-20T10:15:00.000Z"),
                at: [.name("completedAt")])
        }
        let surveyIndex = try reader.object(at: found.2, "survey", isOptional: false)!
        let survey = try decoding(.name("survey")) { () throws(JSONDecodingError) in
            Survey(
                id: try reader.requiredString("id", of: surveyIndex, place: RepeatedStrings.Place.surveyID),
                name: try reader.optionalString("name", of: surveyIndex, place: RepeatedStrings.Place.surveyName))
        }
        let userIndex = try reader.object(at: found.3, "user", isOptional: false)!
        let user = try decoding(.name("user")) { () throws(JSONDecodingError) in
            let members = reader.members(("id", "anonymousId", "email", nil, nil, nil), of: userIndex)
            return User(
                id: try reader.optionalString(at: members.0, "id"),
                anonymousID: try reader.optionalString(at: members.1, "anonymousId"),
                email: try reader.optionalString(at: members.2, "email"))
        }
        var account: Account?
        if let accountIndex = try reader.object(at: found.4, "account", isOptional: true) {
            account = try decoding(.name("account")) { () throws(JSONDecodingError) in
                try Account(reader, accountIndex)
            }
        }
        var answers: [Answer] = []
        if let answersIndex = try reader.array(at: found.5, "answers", isOptional: true) {
            answers.reserveCapacity(reader.elementCount(of: answersIndex))
            try decoding(.name("answers")) { () throws(JSONDecodingError) in
                try reader.forEachElement(of: answersIndex) { offset, element throws(JSONDecodingError) in
                    try decoding(.index(offset)) { () throws(JSONDecodingError) in
                        try reader.check(element, is: .object, expected: "an object")
                        answers.append(try Answer(reader, element, position: offset))
                    }
                }
            }
        }
        // Stored directly, not through `init(id:...)`: delegating made a copy of the whole value.
        self.id = id
        self.completedAt = completedAt
        self.survey = survey
        self.user = user
        self.account = account
        self.answers = answers
    }
}

extension Account {
    /// Decodes the account at `index` (an object), as ``init(from:)`` does.
    init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        let id = try reader.requiredString("id", of: index)
        var traits = Traits()
        if let traitsIndex = try reader.object("traits", of: index, isOptional: true) {
            traits = try decoding(.name("traits")) { () throws(JSONDecodingError) in
                try Traits(reader, traitsIndex)
            }
        }
        self.init(id: id, traits: traits)
    }
}

extension Traits {
    /// Decodes the traits at `index` (an object); `null` values are skipped and a repeated key keeps its first
    /// value, as `JSONDecoder` does.
    init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        self.init()
        var seen = Set<String>()
        try reader.forEachMember(of: index) { name, value throws(JSONDecodingError) in
            let key = reader.string(name)
            guard seen.insert(key).inserted else { return }
            if let value = try decoding(.name(key), { () throws(JSONDecodingError) in try AnswerValue(reader, value) })
            {
                self[key] = value
            }
        }
    }
}

extension Answer {
    /// Decodes the answer at `index` (an object) at `position` in its response, as ``init(from:)`` does.
    init(_ reader: JSONReader, _ index: Int, position: Int) throws(JSONDecodingError) {
        let questionIndex = try reader.object("question", of: index, isOptional: false)!
        let question = try decoding(.name("question")) { () throws(JSONDecodingError) in
            try Question(reader, questionIndex, places: RepeatedStrings.Place.question(position))
        }
        var value: AnswerValue?
        if let valueIndex = reader.member("value", of: index) {
            value = try decoding(.name("value")) { () throws(JSONDecodingError) in
                try AnswerValue(reader, valueIndex)
            }
        }
        if question.kind == .date, case .string(let text)? = value, let date = Timestamp.date(from: text) {
            value = .date(date)
        }
        // Stored directly, not through `init(question:value:)`: delegating made a copy of the answer.
        self.question = question
        self.value = value
    }
}

extension Question {
    /// Decodes the question at `index` (an object), as ``init(from:)`` does; its strings repeat at `places`,
    /// `places + 1` and `places + 2` (``RepeatedStrings/Place``).
    init(_ reader: JSONReader, _ index: Int, places: Int) throws(JSONDecodingError) {
        // One walk of the members finds all five; they are then checked in the `Codable` decoder's order.
        let found = reader.members(("id", "text", "property", "attribution", "kind", nil), of: index)
        let id = try reader.requiredString(at: found.0, "id", place: places)
        let text = try reader.requiredString(at: found.1, "text", place: places + 1)
        let propertyName = try reader.optionalString(at: found.2, "property", place: places + 2)
        var attribution = Attribution.user
        // Names matched as bytes; a `String` is made only for anything else.
        if let nameIndex = try reader.optionalStringIndex(at: found.3, "attribution") {
            if reader.isString(nameIndex, "account") {
                attribution = .account
            } else if !reader.isString(nameIndex, "user") {
                let name = reader.string(nameIndex)
                guard let value = Attribution(rawValue: name) else {
                    throw JSONDecodingError(
                        .invalid("Cannot initialize Attribution from invalid String value \(name)"),
                        at: [.name("attribution")])
                }
                attribution = value
            }
        }
        let kind = try reader.optionalStringIndex(at: found.4, "kind").map { Kind(reader, $0) }
        // Stored directly, not through `init(id:...)`: delegating made a copy of the question.
        self.id = id
        self.text = text
        self.propertyName = propertyName
        self.attribution = attribution
        self.kind = kind
    }
}

extension Question.Kind {
    /// The kind named by the string at `index`: Refiner's own kinds matched as bytes (their names are static
    /// strings, so nothing is made), any other name read as a `String`.
    init(_ reader: JSONReader, _ index: Int) {
        if reader.isString(index, "single_choice") {
            self = .singleChoice
        } else if reader.isString(index, "multiple_choice") {
            self = .multipleChoice
        } else if reader.isString(index, "text") {
            self = .text
        } else if reader.isString(index, "number") {
            self = .number
        } else if reader.isString(index, "email") {
            self = .email
        } else if reader.isString(index, "date") {
            self = .date
        } else if reader.isString(index, "boolean") {
            self = .boolean
        } else {
            self.init(rawValue: reader.string(index))
        }
    }
}

extension AnswerValue {
    /// Decodes the value at `index` as ``init(from:)`` does; `nil` for `null` (a skipped question).
    init?(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        switch reader.kind(index) {
        case .null: return nil
        case .true: self = .boolean(true)
        case .false: self = .boolean(false)
        case .string: self = .string(reader.string(index))
        case .number:
            if let integer = reader.integer(index) {
                self = .integer(integer)
            } else if let decimal = reader.decimal(index) {
                self = .decimal(decimal)
            } else {
                throw Self.notAValue
            }
        case .array:
            var strings: [String] = []
            strings.reserveCapacity(reader.elementCount(of: index))
            try reader.forEachElement(of: index) { _, element throws(JSONDecodingError) in
                guard reader.kind(element) == .string else { throw Self.notAValue }
                strings.append(reader.string(element))
            }
            self = .strings(strings)
        case .object: throw Self.notAValue
        }
    }

    private static var notAValue: JSONDecodingError {
        JSONDecodingError(.invalid("expected a string, a number that fits a Double, a boolean or an array of strings"))
    }
}
