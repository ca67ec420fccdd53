/// An error from RefinerSegment's core: invalid input, invalid configuration, or a message Segment would refuse.
///
/// The ``code`` says what kind of problem it is; ``description`` names what was wrong and where (the
/// response, the question, the trait). New codes may be added in minor releases, so switch over the codes
/// you handle and keep a default. Descriptions never contain the write key.
public struct RefinerSegmentError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem an error reports. Compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidConfiguration = "invalid configuration"
            case missingResponseID = "missing response id"
            case missingUserIdentity = "missing user identity"
            case missingAccountID = "missing account id"
            case missingQuestionID = "missing question id"
            case duplicateQuestion = "duplicate question"
            case collidingPropertyNames = "colliding custom property names"
            case nonFiniteNumber = "non-finite number"
            case dateOutOfRange = "date out of range"
            case messageTooLarge = "message too large"
            case invalidMessage = "invalid message"
            case invalidInput = "invalid input"
            case unhandledEvent = "unhandled event"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A configuration value is out of range (for example a key length with no room after the prefix).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A response has no id (or an empty one).
        public static let missingResponseID = Code(.missingResponseID)
        /// A response's user has neither a user id nor an anonymous id.
        public static let missingUserIdentity = Code(.missingUserIdentity)
        /// A response names an account with an empty id.
        public static let missingAccountID = Code(.missingAccountID)
        /// A question has an empty id.
        public static let missingQuestionID = Code(.missingQuestionID)
        /// One response answers the same question (by id) twice.
        public static let duplicateQuestion = Code(.duplicateQuestion)
        /// Two custom property names of one survey give the same trait key.
        public static let collidingPropertyNames = Code(.collidingPropertyNames)
        /// An answer is NaN or infinite, which JSON cannot carry.
        public static let nonFiniteNumber = Code(.nonFiniteNumber)
        /// A date falls outside the years 0000 to 9999 that ISO-8601 timestamps carry.
        public static let dateOutOfRange = Code(.dateOutOfRange)
        /// An encoded message is larger than Segment accepts (32 KB by default).
        public static let messageTooLarge = Code(.messageTooLarge)
        /// An already-built Segment message is not one Segment would accept.
        public static let invalidMessage = Code(.invalidMessage)
        /// Input (a JSON line, a webhook payload) could not be read as what it claims to be.
        public static let invalidInput = Code(.invalidInput)
        /// A webhook reports an event that RefinerSegment does not turn into Segment calls; hosts may ignore it.
        public static let unhandledEvent = Code(.unhandledEvent)

        /// The code in words, such as `missing user identity`.
        public var description: String { base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The id of the response the problem is in, when there is one.
    public var responseID: String?
    /// What was wrong and where, in words.
    public var detail: String

    /// Creates an error.
    public init(code: Code, responseID: String? = nil, detail: String) {
        self.code = code
        self.responseID = responseID
        self.detail = detail
    }

    /// The code, the response and the detail, for a log line or a person: always one line, since details
    /// quote input (a question's text, a date that does not parse) whose line breaks and other control
    /// characters are written as escapes (`\n`, `\u{1B}`).
    public var description: String {
        if let responseID {
            return LogText.singleLine("\(code) in response '\(responseID)': \(detail)")
        }
        return LogText.singleLine("\(code): \(detail)")
    }
}
