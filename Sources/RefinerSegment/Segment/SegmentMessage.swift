/// One Segment call, encoded exactly as it is sent: the JSON object that goes into a batch.
///
/// The builder makes these from survey responses; already-built messages (a `render` output, a failed
/// file) can be read back with ``init(json:maximumBytes:)``. The message holds no secret: the write key travels on
/// the batch, never on a message.
public struct SegmentMessage: Sendable, Hashable, CustomStringConvertible {
    /// The kind of call. An open set: Segment's other calls (`page`, `alias`...) pass through too.
    public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The call's `type` on the wire.
        public var rawValue: String
        /// Creates a kind from its `type` on the wire.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Ties a user to their traits.
        public static let identify = Kind(rawValue: "identify")
        /// Ties a user to an account and sets the account's traits.
        public static let group = Kind(rawValue: "group")
        /// Records an event, such as `Completed Survey`.
        public static let track = Kind(rawValue: "track")

        /// The call's `type` on the wire.
        public var description: String { rawValue }
    }

    /// Where the message id is: a string of its own, or (a built message) bytes of ``json`` that need no
    /// unescaping, so that building a message makes no string for its id.
    enum StoredMessageID: Sendable {
        case text(String)
        case inJSON(start: Int32, count: Int32)
    }

    /// The kind of call (`type`).
    public var kind: Kind
    /// The message's `messageId`; Segment drops a second message with the same id.
    ///
    /// A message the builder made keeps its id as bytes of its ``json`` (the `messageId` member, which needs
    /// no escaping), and reading this property makes the `String` from them; setting it stores the new id
    /// apart from the JSON, as before, and changing ``json`` keeps the id it had.
    public var messageID: String {
        get {
            switch storedMessageID {
            case .text(let text): return text
            case .inJSON(let start, let count):
                return storedJSON.withUnsafeBufferPointer { bytes in
                    String(
                        decoding: UnsafeBufferPointer(rebasing: bytes[Int(start)..<Int(start + count)]), as: UTF8.self)
                }
            }
        }
        set { storedMessageID = .text(newValue) }
    }
    /// The response the message was built from, when it was built from one (for reports and errors).
    public var responseID: String?
    /// The message as JSON, UTF-8, exactly the bytes that go into the batch.
    public var json: [UInt8] {
        get { storedJSON }
        set {
            // The id leaves the bytes it was read from before they change.
            if case .inJSON = storedMessageID { storedMessageID = .text(messageID) }
            storedJSON = newValue
        }
    }
    /// The bytes of ``json`` (a property of its own so that making a message stores them without a copy: an
    /// observed property is not set in place).
    private var storedJSON: [UInt8]
    var storedMessageID: StoredMessageID
}

// The initializers are in an extension so that the struct keeps its memberwise initializer (private, for the
// stored JSON): the builder's messages are made with it (see ``init(kind:storedMessageID:responseID:json:)``).
extension SegmentMessage {
    /// Creates a message from its parts; the JSON must be a complete Segment message object.
    public init(kind: Kind, messageID: String, responseID: String? = nil, json: [UInt8]) {
        self.kind = kind
        self.storedMessageID = .text(messageID)
        self.responseID = responseID
        self.storedJSON = json
    }

    /// A message whose id is `json[messageIDRange]`, bytes that read as the id without unescaping.
    init(kind: Kind, messageIDRange: Range<Int>, responseID: String?, json: [UInt8]) {
        precondition(messageIDRange.lowerBound >= 0 && messageIDRange.upperBound <= json.count, "an id in the JSON")
        self.init(
            kind: kind,
            storedMessageID: .inJSON(start: Int32(messageIDRange.lowerBound), count: Int32(messageIDRange.count)),
            responseID: responseID, json: json)
    }

    /// A message from its stored parts (the builder's: one path for either form of the id).
    ///
    /// Through the memberwise initializer, which makes the value at once: assigned member by member, the
    /// message was made in a temporary and copied whole into its place (a retain and a release of each of its
    /// references, about 200 instructions a message).
    init(kind: Kind, storedMessageID: StoredMessageID, responseID: String?, json: [UInt8]) {
        self.init(kind: kind, responseID: responseID, storedJSON: json, storedMessageID: storedMessageID)
    }

    /// Calls `body` with the UTF-8 bytes of ``messageID``, without making a `String` of an id kept in the JSON
    /// (the file store writes ids this way).
    package func withMessageIDUTF8<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        switch storedMessageID {
        case .text(var text):
            return try text.withUTF8(body)
        case .inJSON(let start, let count):
            return try storedJSON.withUnsafeBufferPointer { bytes in
                try body(UnsafeBufferPointer(rebasing: bytes[Int(start)..<Int(start + count)]))
            }
        }
    }

    /// The size Segment counts against its per-message limit: the UTF-8 bytes of the JSON.
    public var byteCount: Int { storedJSON.count }

    /// The message's JSON as text.
    public var description: String { String(decoding: json, as: UTF8.self) }

    /// Equal when the kind, the message id, the response id and the JSON are, however the id is stored.
    public static func == (lhs: SegmentMessage, rhs: SegmentMessage) -> Bool {
        guard lhs.kind == rhs.kind, lhs.responseID == rhs.responseID, lhs.json == rhs.json else { return false }
        if case .inJSON(let lhsStart, let lhsCount) = lhs.storedMessageID,
            case .inJSON(let rhsStart, let rhsCount) = rhs.storedMessageID, lhsStart == rhsStart, lhsCount == rhsCount
        {
            return true  // The same bytes of equal JSON.
        }
        return lhs.messageID == rhs.messageID
    }

    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(messageID)
        hasher.combine(responseID)
        hasher.combine(json)
    }
}
