#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns completed survey responses into Segment calls: an `identify`, then a `group` when the user has an
/// account, then (opt-in) a `track "Completed Survey"`, each encoded as the exact JSON of Segment's HTTP
/// Tracking API.
///
/// Building is pure: ``changes(for:)`` says what a response sets, a ``ProfileStore`` (or
/// ``apply(_:to:)``) merges that into the collected profiles by answer time, and
/// ``makeMessages(for:profile:)`` encodes the calls from them. Every check runs before anything is built,
/// and a rejected response gives a ``RefinerSegmentError`` naming the response and what was wrong. The
/// builder is a value; share it freely across tasks.
public struct SegmentCallBuilder: Sendable {
    /// The builder's settings.
    public struct Configuration: Sendable, Hashable {
        /// How trait keys are made: prefix and maximum length.
        public var traitKeys: TraitKeyNormalizer.Configuration
        /// Whether a `track "Completed Survey"` call follows the `group` call. Off by default.
        public var sendsCompletedSurveyEvent: Bool
        /// The largest encoded message in bytes: Segment's 32 KB (32,768 bytes) by default.
        public var maximumMessageBytes: Int
        /// The `context.library` every message carries.
        public var library: LibraryInfo

        /// Creates a configuration; the defaults match Segment's limits and Refiner's own source.
        public init(
            traitKeys: TraitKeyNormalizer.Configuration = .init(),
            sendsCompletedSurveyEvent: Bool = false,
            maximumMessageBytes: Int = 32 * 1024,
            library: LibraryInfo = .refinerSegment
        ) {
            self.traitKeys = traitKeys
            self.sendsCompletedSurveyEvent = sendsCompletedSurveyEvent
            self.maximumMessageBytes = maximumMessageBytes
            self.library = library
        }
    }

    /// The event name of the optional track call.
    public static let completedSurveyEvent = "Completed Survey"

    /// The builder's settings.
    public let configuration: Configuration
    /// The normalizer that makes trait keys.
    public let normalizer: TraitKeyNormalizer
    let emailKey: String
    /// `"context":{"library":{...}}` encoded once, appended to every message.
    let contextJSON: [UInt8]
    /// Resolved keys of recently seen surveys, shared by copies of this builder.
    private let keyCache = SurveyKeyCache()

    /// Creates a builder.
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidConfiguration`` when the
    ///   trait-key settings are out of range.
    public init(configuration: Configuration = Configuration()) throws(RefinerSegmentError) {
        self.configuration = configuration
        self.normalizer = try TraitKeyNormalizer(configuration: configuration.traitKeys)
        self.emailKey = normalizer.key(for: "email")
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.rawKey("library")
        writer.beginObject()
        writer.rawKey("name")
        writer.string(configuration.library.name)
        writer.rawKey("version")
        writer.string(configuration.library.version)
        writer.endObject()
        writer.endObject()
        self.contextJSON = writer.bytes
    }

    /// The trait keys of the response's answers, in order: from the cache when the survey's questions are
    /// unchanged since it was last seen, else resolved (and cached).
    func traitKeys(for response: SurveyResponse) throws(RefinerSegmentError) -> ResolvedKeys {
        let answers = response.answers
        if let keys = keyCache.keys(surveyID: response.survey.id, answers: answers) { return keys }
        do {
            let keys = ResolvedKeys(try normalizer.resolveKeys(count: answers.count) { answers[$0].question })
            keyCache.store(keys, surveyID: response.survey.id, answers: answers)
            return keys
        } catch {
            var error = error
            error.responseID = response.id
            throw error
        }
    }

    /// Checks everything a response must satisfy before calls are built from it.
    ///
    /// - Throws: ``RefinerSegmentError`` naming the response and the problem: an empty response id, a user
    ///   with neither id nor anonymous id, an empty account id, an empty or repeated question id, a NaN or
    ///   infinite number, a date outside the years 0000 to 9999.
    public func validate(_ response: SurveyResponse) throws(RefinerSegmentError) {
        guard !response.id.isEmpty else {
            throw RefinerSegmentError(code: .missingResponseID, detail: "the response has an empty id")
        }
        func fail(_ code: RefinerSegmentError.Code, _ detail: String) -> RefinerSegmentError {
            RefinerSegmentError(code: code, responseID: response.id, detail: detail)
        }
        guard response.user.nonEmptyID != nil || response.user.nonEmptyAnonymousID != nil else {
            throw fail(.missingUserIdentity, "the user has neither an id nor an anonymous id")
        }
        if let account = response.account, account.id.isEmpty {
            throw fail(.missingAccountID, "the account has an empty id")
        }
        guard Timestamp.isRepresentable(response.completedAt) else {
            throw fail(.dateOutOfRange, "completedAt is outside the years 0000 to 9999")
        }
        let answers = response.answers
        // Surveys have a handful of questions: compare ids pairwise rather than hash them, up to a point.
        var seen: Set<String>? = answers.count > 16 ? Set(minimumCapacity: answers.count) : nil
        for position in answers.indices {
            let id = answers[position].question.id
            guard !id.isEmpty else {
                let text = answers[position].question.text
                throw fail(.missingQuestionID, "answer \(position + 1) ('\(text)') has a question with an empty id")
            }
            var isRepeated = false
            if seen != nil {
                isRepeated = !seen!.insert(id).inserted
            } else {
                for earlier in 0..<position where answers[earlier].question.id == id {
                    isRepeated = true
                    break
                }
            }
            guard !isRepeated else {
                throw fail(.duplicateQuestion, "question '\(id)' is answered more than once")
            }
            switch answers[position].value {
            case .decimal(let number)? where !number.isFinite:
                throw fail(.nonFiniteNumber, "question '\(id)' has the answer \(number), which JSON cannot carry")
            case .date(let date)? where !Timestamp.isRepresentable(date):
                throw fail(.dateOutOfRange, "question '\(id)' has a date outside the years 0000 to 9999")
            default:
                break
            }
        }
        if let account = response.account {
            for (name, value) in account.traits {
                switch value {
                case .decimal(let number) where !number.isFinite:
                    throw fail(.nonFiniteNumber, "account trait '\(name)' is \(number), which JSON cannot carry")
                case .date(let date) where !Timestamp.isRepresentable(date):
                    throw fail(.dateOutOfRange, "account trait '\(name)' is a date outside the years 0000 to 9999")
                default:
                    break
                }
            }
        }
    }

    /// Encodes the calls for a response already applied to `profile`, in sending order: `identify`, then
    /// `group` when the response has an account, then `track "Completed Survey"` when configured.
    ///
    /// `identify` carries the user's collected traits and `<prefix>email` when the email is known; `group`
    /// carries all of the account's collected traits. Every message has a deterministic `messageId`, the
    /// completion time as `timestamp`, and `context.library`.
    ///
    /// - Throws: ``RefinerSegmentError`` when the response is invalid, or with code
    ///   ``RefinerSegmentError/Code/messageTooLarge`` naming the response and its largest traits when a
    ///   message is over ``Configuration/maximumMessageBytes``. Nothing is cut silently.
    public func makeMessages(for response: SurveyResponse, profile: CollectedProfile) throws(RefinerSegmentError)
        -> [SegmentMessage]
    {
        try validate(response)
        return try encodeMessages(for: response, profile: profile)
    }

    /// ``makeMessages(for:profile:)`` for a response that has been validated.
    func encodeMessages(for response: SurveyResponse, profile: CollectedProfile) throws(RefinerSegmentError)
        -> [SegmentMessage]
    {
        let parts = sharedParts(of: response)
        var messages: [SegmentMessage] = []
        messages.reserveCapacity(configuration.sendsCompletedSurveyEvent ? 3 : 2)
        let user = profile.user
        // One scratch buffer for every message of the response; each message gets its own copy of its bytes.
        var writer = JSONWriter(capacity: 1024 + parts.bytes.count)
        let identify = encode(.identify, response: response, parts: parts, writer: &writer) { writer in
            writeIdentifyTraits(of: user, to: &writer)
        }
        if identify.json.count <= configuration.maximumMessageBytes {
            messages.append(identify)
        } else {
            messages += try split(.identify, response: response, parts: parts, traits: identifyTraits(of: user))
        }
        if let account = response.account {
            let traits = profile.account.traits
            let group = encode(.group, response: response, parts: parts, groupID: account.id, writer: &writer) {
                writer in traits.writeMembers(to: &writer)
            }
            if group.json.count <= configuration.maximumMessageBytes {
                messages.append(group)
            } else {
                let items = traits.map { (key: $0.key, value: $0.value, answeredAt: $0.answeredAt) }
                messages += try split(.group, response: response, parts: parts, groupID: account.id, traits: items)
            }
        }
        if configuration.sendsCompletedSurveyEvent {
            let track = completedSurveyEvent(for: response, parts: parts)
            guard track.json.count <= configuration.maximumMessageBytes else {
                throw tooLarge(
                    .track, response: response, size: track.json.count, traits: completedSurveyProperties(of: response))
            }
            messages.append(track)
        }
        return messages
    }

    func completedSurveyProperties(of response: SurveyResponse) -> Traits {
        var properties: Traits = ["survey_id": .string(response.survey.id), "response_id": .string(response.id)]
        if let name = response.survey.name { properties["survey_name"] = .string(name) }
        return properties
    }

    func completedSurveyEvent(for response: SurveyResponse, parts: SharedParts) -> SegmentMessage {
        let properties = completedSurveyProperties(of: response)
        return encode(.track, response: response, parts: parts, event: Self.completedSurveyEvent) { writer in
            for (key, value) in properties {
                writer.key(key)
                writer.value(value)
            }
        }
    }

    /// The user's traits and `<prefix>email` (which wins over a trait of the same key), in key order.
    private func writeIdentifyTraits(of user: UserProfile, to writer: inout JSONWriter) {
        user.traits.writeMembers(to: &writer, extra: user.email.map { (emailKey, $0) })
    }

    /// The traits `identify` carries, with their times, in key order (the split path).
    func identifyTraits(of user: UserProfile) -> [(key: String, value: AnswerValue, answeredAt: AnswerTime)] {
        var items = user.traits.filter { $0.key != emailKey }.map {
            (key: $0.key, value: $0.value, answeredAt: $0.answeredAt)
        }
        if let email = user.email {
            let index = items.firstIndex { $0.key > emailKey } ?? items.count
            items.insert((emailKey, .string(email), user.emailAnsweredAt), at: index)
        }
        return items
    }

    /// Applies a response to a profile and encodes its calls: ``apply(_:to:)`` then
    /// ``makeMessages(for:profile:)``.
    public func process(_ response: SurveyResponse, profile: CollectedProfile) throws(RefinerSegmentError) -> (
        messages: [SegmentMessage], profile: CollectedProfile
    ) {
        var updated = profile
        updated.apply(try changes(for: response))
        return (try encodeMessages(for: response, profile: updated), updated)
    }

    /// Members every message of one response carries, encoded once: `"userId":...` and/or
    /// `"anonymousId":...`, and `"timestamp":...`.
    struct SharedParts {
        /// The identity members, then the timestamp member: one array.
        var bytes: [UInt8]
        /// Where the timestamp member starts in ``bytes``.
        var timestampStart: Int

        var identityCount: Int { timestampStart }
    }

    func sharedParts(of response: SurveyResponse) -> SharedParts {
        var shared = JSONWriter(capacity: 160)
        if let userID = response.user.nonEmptyID {
            shared.rawKey("userId")
            shared.string(userID)
        }
        if let anonymousID = response.user.nonEmptyAnonymousID {
            shared.rawKey("anonymousId")
            shared.string(anonymousID)
        }
        let timestampStart = shared.byteCount
        // A fresh object for the timestamp, so that no comma joins it to the identity.
        shared.startMembers()
        shared.rawKey("timestamp")
        shared.date(response.completedAt)
        return SharedParts(bytes: shared.bytes, timestampStart: timestampStart)
    }

    /// One message; `writeTraits` writes the members of its `traits` (or `properties`) object.
    func encode(
        _ kind: SegmentMessage.Kind,
        part: Int = 1,
        response: SurveyResponse,
        parts: SharedParts,
        groupID: String? = nil,
        event: String? = nil,
        writeTraits: (inout JSONWriter) -> Void
    ) -> SegmentMessage {
        var writer = JSONWriter(capacity: 512 + parts.identityCount)
        return encode(
            kind, part: part, response: response, parts: parts, groupID: groupID, event: event, writer: &writer,
            writeTraits: writeTraits)
    }

    /// One message, written in `writer` (emptied first, so that one buffer serves several messages).
    func encode(
        _ kind: SegmentMessage.Kind,
        part: Int = 1,
        response: SurveyResponse,
        parts: SharedParts,
        groupID: String? = nil,
        event: String? = nil,
        writer: inout JSONWriter,
        writeTraits: (inout JSONWriter) -> Void
    ) -> SegmentMessage {
        let messageID = MessageID.make(responseID: response.id, kind: kind, part: part)
        writer.removeAll()
        writer.beginObject()
        writer.rawKey("type")
        writer.string(kind.rawValue)
        writer.rawKey("messageId")
        writer.string(messageID)
        writer.members(parts.bytes, 0..<parts.timestampStart)
        if let groupID {
            writer.rawKey("groupId")
            writer.string(groupID)
        }
        if let event {
            writer.rawKey("event")
            writer.string(event)
        }
        writer.members(parts.bytes, parts.timestampStart..<parts.bytes.count)
        if kind == .track { writer.rawKey("properties") } else { writer.rawKey("traits") }
        writer.beginObject()
        writeTraits(&writer)
        writer.endObject()
        writer.rawKey("context")
        writer.raw(contextJSON)
        writer.endObject()
        return SegmentMessage(kind: kind, messageID: messageID, responseID: response.id, json: writer.bytes)
    }

    func tooLarge(_ kind: SegmentMessage.Kind, response: SurveyResponse, size: Int, traits: Traits)
        -> RefinerSegmentError
    {
        let sizes = traits.map { trait -> (key: String, bytes: Int) in
            var writer = JSONWriter(capacity: 64)
            writer.key(trait.key)
            writer.value(trait.value)
            return (trait.key, writer.bytes.count)
        }
        let largest = sizes.sorted { $0.bytes > $1.bytes }.prefix(3).map { "'\($0.key)' (\($0.bytes) bytes)" }
        return RefinerSegmentError(
            code: .messageTooLarge,
            responseID: response.id,
            detail: "the \(kind) message is \(size) bytes, over the limit of \(configuration.maximumMessageBytes); "
                + "largest traits: " + (largest.isEmpty ? "none" : largest.joined(separator: ", "))
        )
    }
}
