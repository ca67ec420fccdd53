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
    /// What ends every message after its traits: `},"context":{"library":{...}}}`, one copy.
    let messageTail: [UInt8]
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
        self.messageTail = Array("},\"context\":".utf8) + writer.bytes + [UInt8(ascii: "}")]
    }

    /// The cached keys of the response's questions, when the survey's questions are unchanged since the cache
    /// stored them. The cache stores only keys of validated responses, so a hit also means the question ids
    /// are non-empty and distinct.
    func cachedTraitKeys(for response: SurveyResponse) -> ResolvedKeys? {
        keyCache.keys(surveyID: response.survey.id, answers: response.answers)
    }

    /// Resolves the keys of a validated response's questions, and caches them.
    func resolveTraitKeys(for response: SurveyResponse) throws(RefinerSegmentError) -> ResolvedKeys {
        let answers = response.answers
        do {
            let keys = ResolvedKeys(
                try normalizer.resolveKeys(count: answers.count) { answers[$0].question },
                attributions: answers.map(\.question.attribution))
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
        try validate(response, questionIDsAreChecked: false)
    }

    /// ``validate(_:)``; with `questionIDsAreChecked`, without the question-id checks (empty, repeated),
    /// for a response whose questions the key cache matched: it holds only validated responses' questions.
    func validate(_ response: SurveyResponse, questionIDsAreChecked: Bool) throws(RefinerSegmentError) {
        try validateEnvelope(of: response)
        func fail(_ code: RefinerSegmentError.Code, _ detail: String) -> RefinerSegmentError {
            RefinerSegmentError(code: code, responseID: response.id, detail: detail)
        }
        let answers = response.answers
        // Surveys have a handful of questions: compare ids pairwise rather than hash them, up to a point.
        var seen: Set<String>? = answers.count > 16 ? Set(minimumCapacity: answers.count) : nil
        for position in answers.indices {
            guard !questionIDsAreChecked else {
                try checkValue(of: answers[position], responseID: response.id)
                continue
            }
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
            try checkValue(of: answers[position], responseID: response.id)
        }
        try validateAccountTraits(of: response)
    }

    /// The checks of ``validate(_:)`` that come before the answers': the response id, the user's identity,
    /// the account id, the completion time.
    @inline(__always)
    func validateEnvelope(of response: SurveyResponse) throws(RefinerSegmentError) {
        guard !response.id.isEmpty else {
            throw RefinerSegmentError(code: .missingResponseID, detail: "the response has an empty id")
        }
        func fail(_ code: RefinerSegmentError.Code, _ detail: String) -> RefinerSegmentError {
            RefinerSegmentError(code: code, responseID: response.id, detail: detail)
        }
        // Through optional chaining, read where they are: `if let` would copy the account (its id and traits).
        guard response.user.id?.isEmpty == false || response.user.anonymousID?.isEmpty == false else {
            throw fail(.missingUserIdentity, "the user has neither an id nor an anonymous id")
        }
        if response.account?.id.isEmpty == true {
            throw fail(.missingAccountID, "the account has an empty id")
        }
        guard Timestamp.isRepresentable(response.completedAt) else {
            throw fail(.dateOutOfRange, "completedAt is outside the years 0000 to 9999")
        }
    }

    /// The last check of ``validate(_:)``: the account's host-known traits JSON must be able to carry.
    func validateAccountTraits(of response: SurveyResponse) throws(RefinerSegmentError) {
        func fail(_ code: RefinerSegmentError.Code, _ detail: String) -> RefinerSegmentError {
            RefinerSegmentError(code: code, responseID: response.id, detail: detail)
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

    /// Rejects an answer whose value JSON cannot carry: a NaN or infinite number, a date outside 0000 to 9999.
    @inline(__always)
    func checkValue(of answer: Answer, responseID: String) throws(RefinerSegmentError) {
        switch answer.value {
        case .decimal(let number)? where !number.isFinite:
            throw RefinerSegmentError(
                code: .nonFiniteNumber, responseID: responseID,
                detail: "question '\(answer.question.id)' has the answer \(number), which JSON cannot carry")
        case .date(let date)? where !Timestamp.isRepresentable(date):
            throw RefinerSegmentError(
                code: .dateOutOfRange, responseID: responseID,
                detail: "question '\(answer.question.id)' has a date outside the years 0000 to 9999")
        default:
            break
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
        // One scratch buffer for every message of the response (the thread's own, see `ScratchBuffer`), which
        // starts with the members they share; each message is written after them and gets its own copy of its
        // bytes.
        var writer = JSONWriter(threadScratch: ())
        let parts = writeSharedParts(of: response, to: &writer)
        // The traits are written from `profile` where it is (a closure would capture copies of its parts, each
        // retained and released).
        let identifyHead = beginMessage(.identify, response: response, parts: parts, writer: &writer)
        profile.user.traits.writeMembers(to: &writer, extra: profile.user.email.map { (emailKey, $0) })
        let identify = endMessage(.identify, head: identifyHead, response: response, writer: &writer)
        let limit = configuration.maximumMessageBytes
        var group: SegmentMessage? = nil
        if let groupID = response.account?.id {
            let head = beginMessage(.group, response: response, parts: parts, groupID: groupID, writer: &writer)
            profile.account.traits.writeMembers(to: &writer)
            let built = endMessage(.group, head: head, response: response, writer: &writer)
            // The common case, an identify and a group that fit: the array made at once, with both (through an
            // optional and its closure, the group was copied and the original freed).
            if !configuration.sendsCompletedSurveyEvent, identify.byteCount <= limit, built.byteCount <= limit {
                return [identify, built]
            }
            group = built
        }
        var messages: [SegmentMessage] = []
        messages.reserveCapacity(configuration.sendsCompletedSurveyEvent ? 3 : 2)
        if identify.byteCount <= limit {
            messages.append(consume identify)
        } else {
            messages += try split(
                .identify, response: response, parts: parts.copied(from: writer),
                traits: identifyTraits(of: profile.user))
        }
        if let groupID = response.account?.id, let group {
            if group.byteCount <= limit {
                messages.append(group)
            } else {
                let items = profile.account.traits.map { (key: $0.key, value: $0.value, answeredAt: $0.answeredAt) }
                messages += try split(
                    .group, response: response, parts: parts.copied(from: writer), groupID: groupID, traits: items)
            }
        }
        if configuration.sendsCompletedSurveyEvent {
            let track = completedSurveyEvent(for: response, parts: parts, writer: &writer)
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
        var writer = JSONWriter(capacity: 512 + parts.identityCount)
        return completedSurveyEvent(for: response, parts: parts, writer: &writer)
    }

    func completedSurveyEvent(for response: SurveyResponse, parts: SharedParts, writer: inout JSONWriter)
        -> SegmentMessage
    {
        let properties = completedSurveyProperties(of: response)
        return encode(.track, response: response, parts: parts, event: Self.completedSurveyEvent, writer: &writer) {
            writer in
            for (key, value) in properties {
                writer.key(key)
                writer.value(value)
            }
        }
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
    ///
    /// The profile is taken as the caller's to consume: a profile passed for the last time (a new one, or
    /// one read from a store and replaced by the result) is updated in place, not copied.
    public func process(_ response: SurveyResponse, profile: consuming CollectedProfile) throws(RefinerSegmentError)
        -> (messages: [SegmentMessage], profile: CollectedProfile)
    {
        // The common case merges the response straight into the profile; the rest goes through the changes.
        if !(try applyDirectly(response, to: &profile)) { profile.apply(try changes(for: response)) }
        let messages = try encodeMessages(for: response, profile: profile)
        return (messages, consume profile)
    }

    /// Members every message of one response carries, encoded once: `"userId":...` and/or
    /// `"anonymousId":...`, and `"timestamp":...`.
    ///
    /// They are in an array of their own (``sharedParts(of:)``), or at the start of the writer the messages
    /// are written in (``writeSharedParts(of:to:)``, one allocation fewer per response), which keeps them
    /// when it starts the next message.
    struct SharedParts {
        /// The identity members, then the timestamp member: one array; nil when they are at the start of the
        /// writer each message is written in.
        var bytes: [UInt8]?
        /// Where the timestamp member starts.
        var timestampStart: Int
        /// Where the timestamp member ends.
        var end: Int

        var identityCount: Int { timestampStart }

        /// The parts in an array of their own, for messages written in another writer than `writer`.
        func copied(from writer: borrowing JSONWriter) -> SharedParts {
            guard bytes == nil else { return self }
            return SharedParts(bytes: writer.bytes(in: 0..<end), timestampStart: timestampStart, end: end)
        }
    }

    func sharedParts(of response: SurveyResponse) -> SharedParts {
        var shared = JSONWriter(capacity: 160)
        let parts = writeSharedParts(of: response, to: &shared)
        return SharedParts(bytes: shared.bytes, timestampStart: parts.timestampStart, end: parts.end)
    }

    /// Writes the shared members at the start of `writer` (emptied first); messages written in it after them
    /// with ``encode(_:part:response:parts:groupID:event:writer:writeTraits:)`` keep them.
    func writeSharedParts(of response: SurveyResponse, to shared: inout JSONWriter) -> SharedParts {
        shared.removeAll()
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
        return SharedParts(bytes: nil, timestampStart: timestampStart, end: shared.byteCount)
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
        // A fresh writer does not hold the parts.
        let parts = parts.bytes == nil ? sharedParts(of: response) : parts
        return encode(
            kind, part: part, response: response, parts: parts, groupID: groupID, event: event, writer: &writer,
            writeTraits: writeTraits)
    }

    /// One message, written in `writer` (emptied first, so that one buffer serves several messages; but for
    /// the shared parts at its start when `parts` are there, see ``writeSharedParts(of:to:)``).
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
        let head = beginMessage(
            kind, part: part, response: response, parts: parts, groupID: groupID, event: event, writer: &writer)
        writeTraits(&writer)
        return endMessage(kind, head: head, response: response, writer: &writer)
    }

    /// Where a message written by ``beginMessage(_:part:response:parts:groupID:event:writer:)`` starts in its
    /// writer, and its id.
    struct MessageHead {
        /// Where the message's bytes start.
        var start: Int
        /// The id's bytes, counted from `start`.
        var idRange: Range<Int>
        /// The id as a string of its own, when its bytes in the JSON are escaped.
        var writtenID: String?
    }

    /// Writes a message up to the members of its `traits` (or `properties`) object, which the caller writes
    /// next, then ends the message with ``endMessage(_:head:response:writer:)``. `writer` is emptied first
    /// but for the shared parts at its start when `parts` are there.
    func beginMessage(
        _ kind: SegmentMessage.Kind,
        part: Int = 1,
        response: SurveyResponse,
        parts: SharedParts,
        groupID: String? = nil,
        event: String? = nil,
        writer: inout JSONWriter
    ) -> MessageHead {
        let start = parts.bytes == nil ? parts.end : 0
        writer.removeAll(keepingFirst: start)
        writer.beginObject()
        writer.rawKey("type")
        let name = MessageID.staticName(of: kind)
        if let name { writer.rawString(name) } else { writer.string(kind.rawValue) }
        writer.rawKey("messageId")
        // The id is written straight into the message, and the message keeps where it is rather than a
        // string of its own; an id that needed escaping (a response id with a quote...) is kept as a string.
        let idStart = writer.byteCount + 1
        var writtenID: String? = nil
        if let name, part == 1, let length = MessageID.plainLength(responseID: response.id, name: name) {
            writer.openString()
            writer.rawStringContents("refiner-")
            writer.stringContents(response.id)
            writer.rawStringContents("-")
            writer.rawStringContents(name)
            writer.closeString()
            if writer.byteCount - 1 - idStart != length {
                writtenID = MessageID.make(responseID: response.id, kind: kind, part: part)
            }
        } else {
            let messageID = MessageID.make(responseID: response.id, kind: kind, part: part)
            writer.string(messageID)
            if writer.byteCount - 1 - idStart != messageID.utf8.count { writtenID = messageID }
        }
        let idRange = (idStart - start)..<(writer.byteCount - 1 - start)
        if let bytes = parts.bytes {
            writer.members(bytes, 0..<parts.timestampStart)
        } else {
            writer.members(copyingOwn: 0..<parts.timestampStart)
        }
        if let groupID {
            writer.rawKey("groupId")
            writer.string(groupID)
        }
        if let event {
            writer.rawKey("event")
            writer.string(event)
        }
        if let bytes = parts.bytes {
            writer.members(bytes, parts.timestampStart..<parts.end)
        } else {
            writer.members(copyingOwn: parts.timestampStart..<parts.end)
        }
        if kind == .track { writer.rawKey("properties") } else { writer.rawKey("traits") }
        writer.beginObject()
        return MessageHead(start: start, idRange: idRange, writtenID: writtenID)
    }

    /// Ends a message ``beginMessage(_:part:response:parts:groupID:event:writer:)`` started, after its traits,
    /// and copies it out of the writer.
    @inline(__always)
    func endMessage(
        _ kind: SegmentMessage.Kind, head: consuming MessageHead, response: SurveyResponse, writer: inout JSONWriter
    ) -> SegmentMessage {
        // The traits' object closed, `context` and the message's end: one copy.
        writer.rawClosing(messageTail)
        // One initializer for either form of the id, the head consumed (the head was copied and destroyed per
        // message). The compiler still makes the message of borrowed parts and copies it whole once, about
        // 220 instructions a message (Docs/Performance.md, sixth round).
        let id: SegmentMessage.StoredMessageID
        if let writtenID = head.writtenID.take() {
            id = .text(writtenID)
        } else {
            id = .inJSON(start: Int32(head.idRange.lowerBound), count: Int32(head.idRange.count))
        }
        return SegmentMessage(
            kind: kind, storedMessageID: id, responseID: response.id, json: writer.bytes(from: head.start))
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
