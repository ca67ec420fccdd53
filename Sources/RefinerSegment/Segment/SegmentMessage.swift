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

    /// The kind of call (`type`).
    public var kind: Kind
    /// The message's `messageId`; Segment drops a second message with the same id.
    public var messageID: String
    /// The response the message was built from, when it was built from one (for reports and errors).
    public var responseID: String?
    /// The message as JSON, UTF-8, exactly the bytes that go into the batch.
    public var json: [UInt8]

    /// Creates a message from its parts; the JSON must be a complete Segment message object.
    public init(kind: Kind, messageID: String, responseID: String? = nil, json: [UInt8]) {
        self.kind = kind
        self.messageID = messageID
        self.responseID = responseID
        self.json = json
    }

    /// The size Segment counts against its per-message limit: the UTF-8 bytes of the JSON.
    public var byteCount: Int { json.count }

    /// The message's JSON as text.
    public var description: String { String(decoding: json, as: UTF8.self) }
}
