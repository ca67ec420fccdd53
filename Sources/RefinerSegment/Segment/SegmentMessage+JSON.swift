#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SegmentMessage {
    /// Reads an already-built Segment message (a line of `render`'s output or of a failed-messages file) and
    /// keeps its bytes unchanged. The library's own JSON reader checks the whole message.
    ///
    /// The JSON must be an object with a non-empty string `type` and `messageId` (at most 100 characters),
    /// a non-empty `userId` or `anonymousId`, a `groupId` for a `group` and an `event` for a `track`, and be
    /// at most `maximumBytes` long. Other fields are not checked: they pass through as they are.
    ///
    /// - Parameters:
    ///   - json: The message's UTF-8 JSON.
    ///   - maximumBytes: Segment's per-message limit, 32 KB by default.
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidMessage`` saying what is
    ///   missing or wrong, or ``RefinerSegmentError/Code/messageTooLarge``.
    public init(json: some Collection<UInt8>, maximumBytes: Int = 32 * 1024) throws(RefinerSegmentError) {
        let bytes = Array(json)
        let probe: Probe
        do {
            probe = try JSONReader.withDocument(bytes) { reader throws(JSONDecodingError) in
                try Probe(reader, JSONReader.root)
            }
        } catch {
            throw RefinerSegmentError(code: .invalidMessage, detail: error.detail)
        }
        func invalid(_ detail: String) -> RefinerSegmentError {
            RefinerSegmentError(code: .invalidMessage, detail: "message '\(probe.messageId ?? "")': " + detail)
        }
        guard let type = probe.type, !type.isEmpty else {
            throw RefinerSegmentError(code: .invalidMessage, detail: "missing field 'type'")
        }
        guard let messageID = probe.messageId, !messageID.isEmpty else {
            throw RefinerSegmentError(code: .invalidMessage, detail: "missing field 'messageId'")
        }
        guard messageID.count <= MessageID.maximumLength else {
            throw invalid("the messageId is longer than \(MessageID.maximumLength) characters")
        }
        guard probe.userId?.isEmpty == false || probe.anonymousId?.isEmpty == false else {
            throw invalid("neither 'userId' nor 'anonymousId' is set")
        }
        if type == Kind.group.rawValue, probe.groupId?.isEmpty != false {
            throw invalid("a group call needs a 'groupId'")
        }
        if type == Kind.track.rawValue, probe.event?.isEmpty != false {
            throw invalid("a track call needs an 'event'")
        }
        guard bytes.count <= maximumBytes else {
            throw RefinerSegmentError(
                code: .messageTooLarge,
                detail: "message '\(messageID)' is \(bytes.count) bytes, more than \(maximumBytes)"
            )
        }
        self.init(kind: Kind(rawValue: type), messageID: messageID, json: bytes)
    }

    /// The fields checked; the rest of the object is checked to be JSON and kept as bytes.
    private struct Probe {
        var type: String?
        var messageId: String?
        var userId: String?
        var anonymousId: String?
        var groupId: String?
        var event: String?

        init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
            try reader.check(index, is: .object, expected: "an object")
            type = try reader.optionalString("type", of: index)
            messageId = try reader.optionalString("messageId", of: index)
            userId = try reader.optionalString("userId", of: index)
            anonymousId = try reader.optionalString("anonymousId", of: index)
            groupId = try reader.optionalString("groupId", of: index)
            event = try reader.optionalString("event", of: index)
        }
    }
}
