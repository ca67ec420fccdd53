import RefinerSegment

/// The collected profiles, in one actor so that concurrent webhooks update them one at a time.
///
/// In memory for the example: after a restart, `identify` calls carry only a user's newest answers until
/// the user answers again. Persist ``CollectedProfile`` values (they are `Codable`) to keep them.
public actor ProfileKeeper {
    private let builder: SegmentCallBuilder
    private var store = InMemoryProfileStore()

    /// Creates an empty keeper that builds calls with `builder`.
    public init(builder: SegmentCallBuilder) {
        self.builder = builder
    }

    /// Folds the response into the profiles and returns its calls: identify, then group.
    ///
    /// A response whose calls would be larger than `maximumMessageBytes` (the pipeline's limit) throws
    /// and leaves the profiles as they were, so that one oversized answer cannot make every later call
    /// for that user too large as well. Otherwise the profiles are updated before the calls are recorded.
    /// That is safe: if recording fails, Refiner sends the webhook again, and applying the same response
    /// twice gives the same traits.
    ///
    /// - Throws: ``RefinerSegmentError`` when the response cannot be built, ``TooLarge`` when a call is too
    ///   large.
    public func process(_ response: SurveyResponse, maximumMessageBytes: Int) throws -> [SegmentMessage] {
        let (messages, updated) = try builder.process(response, profile: store.profile(for: response))
        if let large = messages.first(where: { $0.byteCount > maximumMessageBytes }) {
            throw TooLarge(messageID: large.messageID, bytes: large.byteCount, limit: maximumMessageBytes)
        }
        store.store(updated, for: response)
        return messages
    }

    /// A call over Segment's size limit, named.
    public struct TooLarge: Error, CustomStringConvertible {
        /// The call's `messageId`.
        public var messageID: String
        /// Its size in bytes of JSON.
        public var bytes: Int
        /// The limit.
        public var limit: Int

        /// `message 'refiner-…-identify' is 40000 bytes, more than 32768`.
        public var description: String { "message '\(messageID)' is \(bytes) bytes, more than \(limit)" }
    }
}
