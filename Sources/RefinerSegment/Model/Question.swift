/// A survey question: where an answer's trait key comes from, and whether the answer describes the user or
/// the account.
///
/// The JSON form is `{"id": ..., "text": ..., "property": ..., "attribution": "user"|"account", "kind": ...}`;
/// `property`, `attribution` (default `user`) and `kind` are optional.
public struct Question: Sendable, Hashable, Codable {
    /// The question's stable id within its survey. Must not be empty.
    public var id: String
    /// The question as the user saw it; the trait key is derived from it unless ``propertyName`` is set.
    public var text: String
    /// A custom property name that replaces the text as the source of the trait key (it is prefixed too).
    public var propertyName: String?
    /// Whether the answer is collected on the user (`identify`) or on the account (`group`).
    public var attribution: Attribution
    /// What kind of answer the question takes, when known. A `date` question's string answers are read as
    /// ISO-8601 dates.
    public var kind: Kind?

    /// Creates a question.
    public init(
        id: String,
        text: String,
        propertyName: String? = nil,
        attribution: Attribution = .user,
        kind: Kind? = nil
    ) {
        self.id = id
        self.text = text
        self.propertyName = propertyName
        self.attribution = attribution
        self.kind = kind
    }

    enum CodingKeys: String, CodingKey {
        case id
        case text
        case propertyName = "property"
        case attribution
        case kind
    }

    /// Decodes the JSON form; `attribution` defaults to `user`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        self.text = try container.decode(String.self, forKey: .text)
        self.propertyName = try container.decodeIfPresent(String.self, forKey: .propertyName)
        self.attribution = try container.decodeIfPresent(Attribution.self, forKey: .attribution) ?? .user
        self.kind = try container.decodeIfPresent(Kind.self, forKey: .kind)
    }

    /// Encodes the JSON form, leaving out absent optional fields.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(text, forKey: .text)
        try container.encodeIfPresent(propertyName, forKey: .propertyName)
        try container.encode(attribution, forKey: .attribution)
        try container.encodeIfPresent(kind, forKey: .kind)
    }
}

/// Whether an answer describes the user who gave it or the account the user belongs to.
public enum Attribution: String, Sendable, Hashable, Codable, CaseIterable {
    /// Collected on the user; sent as a trait of the `identify` call.
    case user
    /// Collected on the account; sent as a trait of the `group` call.
    case account
}

extension Question {
    /// The kind of answer a question takes. An open set: unknown kinds decode and round-trip unchanged.
    public struct Kind: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        /// The kind's name on the wire, such as `single_choice`.
        public var rawValue: String

        /// Creates a kind from its name on the wire.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Free text.
        public static let text = Kind(rawValue: "text")
        /// One option out of several.
        public static let singleChoice = Kind(rawValue: "single_choice")
        /// Several options out of several; the answer is a list of strings.
        public static let multipleChoice = Kind(rawValue: "multiple_choice")
        /// A number: NPS, rating, scale.
        public static let number = Kind(rawValue: "number")
        /// An email address.
        public static let email = Kind(rawValue: "email")
        /// A date; string answers are read as ISO-8601 dates.
        public static let date = Kind(rawValue: "date")
        /// Yes or no.
        public static let boolean = Kind(rawValue: "boolean")

        /// Decodes the kind from a JSON string.
        public init(from decoder: any Decoder) throws {
            self.rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        /// Encodes the kind as a JSON string.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        /// The kind's name on the wire.
        public var description: String { rawValue }
    }
}
