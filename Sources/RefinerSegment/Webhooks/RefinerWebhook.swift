#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Refiner webhook payload: what Refiner POSTs when something happens to a survey, such as
/// `triggered_event: "Completed Survey"`.
///
/// Only the fields RefinerSegment maps are modelled; every other field is ignored, and fields that other
/// events may leave out or set to `null` are optional, so that any Refiner event decodes and
/// ``makeResponse()`` can say precisely why it is not a completed survey. The JSON form is Refiner's own
/// (snake_case keys). See `Docs/Webhooks.md` for the mapping to Segment calls.
public struct RefinerWebhook: Sendable, Hashable, Codable {
    /// The event that triggered the webhook; only ``completedSurveyEvent`` becomes a response.
    public var triggeredEvent: String?
    /// Refiner's id for the contact; the `anonymousId` when the contact has no ``remoteID``.
    public var uuid: String?
    /// The host product's id for the contact (`userId` on Segment calls), when Refiner knows it.
    public var remoteID: String?
    /// The contact's email.
    public var email: String?
    /// The account the contact belongs to, when Refiner knows one.
    public var account: Account?
    /// The survey (Refiner calls it a form).
    public var form: Form?
    /// The survey response.
    public var response: Response?

    /// The `triggered_event` of a completed survey, the one event RefinerSegment turns into Segment calls.
    public static let completedSurveyEvent = "Completed Survey"

    /// Creates a payload; every field is optional, as in Refiner's JSON.
    public init(
        triggeredEvent: String? = nil,
        uuid: String? = nil,
        remoteID: String? = nil,
        email: String? = nil,
        account: Account? = nil,
        form: Form? = nil,
        response: Response? = nil
    ) {
        self.triggeredEvent = triggeredEvent
        self.uuid = uuid
        self.remoteID = remoteID
        self.email = email
        self.account = account
        self.form = form
        self.response = response
    }

    enum CodingKeys: String, CodingKey {
        case triggeredEvent = "triggered_event"
        case uuid
        case remoteID = "remote_id"
        case email
        case account
        case form
        case response
    }

    /// Reads a payload from the bytes of a webhook request's body.
    ///
    /// Read by the library's own JSON reader, with the results and errors of the `Codable` conformance.
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidInput`` when the bytes are
    ///   not JSON (the description says where), or a field has the wrong type (the description names it, such
    ///   as `response.uuid`).
    public init(json: some Collection<UInt8>) throws(RefinerSegmentError) {
        do {
            self = try JSONReader.withDocument(json) { reader throws(JSONDecodingError) in
                try RefinerWebhook(reader, JSONReader.root)
            }
        } catch {
            throw RefinerSegmentError(code: .invalidInput, detail: error.detail)
        }
    }
}

extension RefinerWebhook {
    /// The account part of a payload.
    public struct Account: Sendable, Hashable, Codable {
        /// Refiner's id for the account.
        public var uuid: String?
        /// The host product's id for the account: the `groupId`. Without one there is no `group` call.
        public var remoteID: String?
        /// The account's attributes, `null` ones included: a key present here marks an answer with the same
        /// key as describing the account. The non-null ones become the `group` call's traits.
        public var attributes: [String: Value]

        /// Creates an account part.
        public init(uuid: String? = nil, remoteID: String? = nil, attributes: [String: Value] = [:]) {
            self.uuid = uuid
            self.remoteID = remoteID
            self.attributes = attributes
        }

        enum CodingKeys: String, CodingKey {
            case uuid
            case remoteID = "remote_id"
            case attributes
        }

        /// Decodes Refiner's JSON; `attributes` may be absent, `null` or `[]`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.uuid = try container.decodeIfPresent(String.self, forKey: .uuid)
            self.remoteID = try container.decodeIfPresent(String.self, forKey: .remoteID)
            self.attributes = try container.decodeObjectIfPresent(forKey: .attributes)
        }
    }

    /// The survey part of a payload (Refiner calls surveys forms).
    public struct Form: Sendable, Hashable, Codable {
        /// Refiner's id for the survey: the survey id.
        public var uuid: String?
        /// The survey's name.
        public var name: String?

        /// Creates a survey part.
        public init(uuid: String? = nil, name: String? = nil) {
            self.uuid = uuid
            self.name = name
        }
    }

    /// The response part of a payload.
    public struct Response: Sendable, Hashable, Codable {
        /// Refiner's id for the response: the response id, from which the `messageId`s derive.
        public var uuid: String?
        /// When the survey was completed, as Refiner writes it: `2022-10-18T05:05:45.000000Z`, or
        /// `2020-09-02 21:53:33` (UTC) in older payloads.
        public var completedAt: String?
        /// The answers, keyed by Refiner's question identifier (already snake_case).
        public var data: [String: Value]

        /// Creates a response part.
        public init(uuid: String? = nil, completedAt: String? = nil, data: [String: Value] = [:]) {
            self.uuid = uuid
            self.completedAt = completedAt
            self.data = data
        }

        enum CodingKeys: String, CodingKey {
            case uuid
            case completedAt = "completed_at"
            case data
        }

        /// Decodes Refiner's JSON; `data` may be absent, `null` or `[]`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.uuid = try container.decodeIfPresent(String.self, forKey: .uuid)
            self.completedAt = try container.decodeIfPresent(String.self, forKey: .completedAt)
            self.data = try container.decodeObjectIfPresent(forKey: .data)
        }
    }
}

extension KeyedDecodingContainer {
    /// An object of values that may be absent or `null` (no entries), or `[]`: Refiner is written in PHP,
    /// whose JSON encoder writes an empty map as an empty array.
    fileprivate func decodeObjectIfPresent(forKey key: Key) throws -> [String: RefinerWebhook.Value] {
        guard contains(key), try !decodeNil(forKey: key) else { return [:] }
        if let values = try? decode([RefinerWebhook.Value].self, forKey: key), values.isEmpty { return [:] }
        return try decode([String: RefinerWebhook.Value].self, forKey: key)
    }
}
