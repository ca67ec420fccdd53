#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RefinerWebhook {
    /// The completed survey response this payload reports, ready for ``SegmentCallBuilder``.
    ///
    /// - The user: `userId` = `remote_id`; without one (`null` or empty), `anonymousId` = the contact's
    ///   `uuid`; email = `email`. The contact's own `attributes` are not sent.
    /// - The response: id = `response.uuid`; completion time = `response.completed_at`; survey =
    ///   `form.uuid` and `form.name`.
    /// - The answers: one per non-`null` entry of `response.data`, sorted by key so that the same payload
    ///   always gives the same response. The key is both the question's id and its text, so its trait key
    ///   is the prefix plus the key. An answer whose key is present in `account.attributes` (even with a
    ///   `null` value) is attributed to the account, the others to the user.
    /// - The account: id = `account.remote_id`, traits = the non-`null` `account.attributes`. Without a
    ///   `remote_id` there is no account: no `group` call, and answers attributed to the account go on the
    ///   `identify` call instead.
    ///
    /// Values keep their JSON type (string, integer, decimal, boolean, array of strings); objects and
    /// other arrays become a string of their compact JSON (see ``Value/answerValue``).
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/unhandledEvent`` when
    ///   ``triggeredEvent`` is not `Completed Survey` (checked first; a host may answer such a webhook with
    ///   a success and ignore it); with code ``RefinerSegmentError/Code/invalidInput`` naming the field when
    ///   `triggered_event`, `response`, `response.uuid`, `response.completed_at` or `form.uuid` is missing
    ///   or empty, or `response.completed_at` is not a date-time; with code
    ///   ``RefinerSegmentError/Code/missingUserIdentity`` when the contact has neither `remote_id` nor `uuid`.
    public func makeResponse() throws(RefinerSegmentError) -> SurveyResponse {
        guard let triggeredEvent else { throw Self.missing("triggered_event") }
        guard triggeredEvent == Self.completedSurveyEvent else {
            throw RefinerSegmentError(
                code: .unhandledEvent,
                responseID: Self.nonEmpty(response?.uuid),
                detail: "the webhook reports '\(triggeredEvent)', and only '\(Self.completedSurveyEvent)' "
                    + "is turned into Segment calls"
            )
        }
        guard let response else { throw Self.missing("response") }
        guard let responseID = response.uuid, !responseID.isEmpty else { throw Self.missing("response.uuid") }
        guard let completedAtText = response.completedAt, !completedAtText.isEmpty else {
            throw Self.missing("response.completed_at", responseID: responseID)
        }
        guard let completedAt = Timestamp.date(from: completedAtText) else {
            throw RefinerSegmentError(
                code: .invalidInput,
                responseID: responseID,
                detail: "'response.completed_at' is '\(completedAtText)', not a date-time such as "
                    + "2022-10-18T05:05:45.000000Z or 2020-09-02 21:53:33"
            )
        }
        guard let surveyID = form?.uuid, !surveyID.isEmpty else {
            throw Self.missing("form.uuid", responseID: responseID)
        }

        let user: User
        if let remoteID = Self.nonEmpty(remoteID) {
            user = User(id: remoteID, email: Self.nonEmpty(email))
        } else if let contactID = Self.nonEmpty(uuid) {
            user = User(anonymousID: contactID, email: Self.nonEmpty(email))
        } else {
            throw RefinerSegmentError(
                code: .missingUserIdentity,
                responseID: responseID,
                detail: "the contact has neither a 'remote_id' nor a 'uuid'"
            )
        }

        let accountAttributes = account?.attributes ?? [:]
        var responseAccount: RefinerSegment.Account?
        if let accountID = Self.nonEmpty(account?.remoteID) {
            var traits = Traits()
            for (name, value) in accountAttributes {
                if let value = value.answerValue { traits[name] = value }
            }
            responseAccount = RefinerSegment.Account(id: accountID, traits: traits)
        }

        var answers: [Answer] = []
        answers.reserveCapacity(response.data.count)
        for key in response.data.keys.sorted() {
            guard let value = response.data[key]?.answerValue else { continue }
            let attribution: Attribution = accountAttributes[key] != nil ? .account : .user
            answers.append(Answer(question: Question(id: key, text: key, attribution: attribution), value: value))
        }

        return SurveyResponse(
            id: responseID,
            completedAt: completedAt,
            survey: Survey(id: surveyID, name: Self.nonEmpty(form?.name)),
            user: user,
            account: responseAccount,
            answers: answers
        )
    }

    private static func missing(_ field: String, responseID: String? = nil) -> RefinerSegmentError {
        RefinerSegmentError(code: .invalidInput, responseID: responseID, detail: "missing field '\(field)'")
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}

extension SurveyResponse {
    /// Reads the completed survey response from the body of a Refiner webhook request: the one call a
    /// bridge from Refiner to Segment needs.
    ///
    /// ```swift
    /// let messages = try profiles.process(SurveyResponse(refinerWebhook: body), with: builder)
    /// ```
    ///
    /// - Throws: ``RefinerSegmentError`` from ``RefinerWebhook/init(json:)`` and
    ///   ``RefinerWebhook/makeResponse()``: code ``RefinerSegmentError/Code/unhandledEvent`` for events
    ///   other than `Completed Survey` (answer those with a success and ignore them), and
    ///   ``RefinerSegmentError/Code/invalidInput`` naming the field for a payload that is not JSON or
    ///   lacks what a response needs.
    public init(refinerWebhook json: some Collection<UInt8>) throws(RefinerSegmentError) {
        self = try RefinerWebhook(json: json).makeResponse()
    }

    /// Reads a response from one JSON record in either shape RefinerSegment accepts: the response's own
    /// JSON form (see ``init(json:)``) or a Refiner webhook payload (see ``init(refinerWebhook:)``).
    ///
    /// The shapes are told apart by the record's top-level keys: an object with `triggered_event`, or with
    /// both `response` and `form`, is a webhook payload; any other is the response's JSON form. The record
    /// is parsed once. The command-line tool reads every input record through this initializer.
    ///
    /// - Throws: ``RefinerSegmentError`` as the initializer for the detected shape does.
    @inlinable
    public init(jsonOrRefinerWebhook json: some Collection<UInt8>) throws(RefinerSegmentError) {
        // Inlined into the caller, so that a byte array (or any contiguous bytes) goes straight to the
        // non-generic reader: the generic body, called from another module, ran unspecialized.
        let result =
            json.withContiguousStorageIfAvailable(Self.read(jsonOrRefinerWebhook:))
            ?? Array(json).withUnsafeBufferPointer(Self.read(jsonOrRefinerWebhook:))
        self = try result.get()
    }

    /// The response in `json` in either shape (the reader of ``init(jsonOrRefinerWebhook:)``), or the error.
    @usableFromInline
    static func read(jsonOrRefinerWebhook json: UnsafeBufferPointer<UInt8>) -> Result<
        SurveyResponse, RefinerSegmentError
    > {
        read(jsonOrRefinerWebhook: json, repeated: nil)
    }

    /// Reads a response from one JSON record in either shape, as ``init(jsonOrRefinerWebhook:)`` does, values
    /// and errors alike, reusing the strings of the last response read with `repeated` where they repeat:
    /// the command-line tool's read loop, where a backfill repeats one survey's questions line after line.
    package init(jsonOrRefinerWebhook json: [UInt8], repeated: RepeatedStrings) throws(RefinerSegmentError) {
        self = try json.withUnsafeBufferPointer { buffer throws(RefinerSegmentError) in
            try Self.read(jsonOrRefinerWebhook: buffer, repeated: repeated).get()
        }
    }

    private static func read(
        jsonOrRefinerWebhook json: UnsafeBufferPointer<UInt8>, repeated: RepeatedStrings?
    ) -> Result<SurveyResponse, RefinerSegmentError> {
        // A response of the usual shape decodes while it is scanned; a webhook, anything unusual and every
        // error go the general way.
        if let response = ResponseScanner.response(in: json, repeated: repeated) { return .success(response) }
        let record: ShapedRecord
        do throws(JSONDecodingError) {
            record = try JSONReader.withDocument(buffer: json, repeated: repeated, ShapedRecord.init)
        } catch {
            return .failure(RefinerSegmentError(code: .invalidInput, detail: error.detail))
        }
        do throws(RefinerSegmentError) {
            return .success(try record.response())
        } catch {
            return .failure(error)
        }
    }
}

/// One JSON record in either shape, decoded in one pass after a look at its top-level keys.
private enum ShapedRecord {
    case response(SurveyResponse)
    case webhook(RefinerWebhook)

    /// Tells the shape from the top-level names of the document and decodes it by that shape.
    init(_ reader: JSONReader) throws(JSONDecodingError) {
        let root = JSONReader.root
        try reader.check(root, is: .object, expected: "an object")
        if reader.member("triggered_event", of: root) != nil
            || (reader.member("response", of: root) != nil && reader.member("form", of: root) != nil)
        {
            self = .webhook(try RefinerWebhook(reader, root))
        } else {
            self = .response(try SurveyResponse(reader, root))
        }
    }

    /// The response the record holds (a webhook's, made by ``RefinerWebhook/makeResponse()``).
    consuming func response() throws(RefinerSegmentError) -> SurveyResponse {
        switch consume self {
        case .response(let response): return response
        case .webhook(let webhook): return try webhook.makeResponse()
        }
    }
}
