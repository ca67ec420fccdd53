extension SegmentPipeline {
    /// Applies a response to a profile store, builds its calls on the merged profiles and records them as
    /// one unit, holding the response's user and account records in the store's
    /// ``ProfileStore/recordingOrder`` until the unit's place in the store is fixed.
    ///
    /// So, for one user (and for one account), messages are recorded in the order they were built: two
    /// responses of one user recorded at once can never have the `identify` built on the older profile
    /// arrive last. Responses of unrelated users and accounts do not wait for each other. With a message
    /// store that writes before it syncs (the file store), the records are given up once the unit is
    /// written, before its `fsync`: the next response of the account is applied and written while this
    /// one waits, so one account's responses share `fsync`s instead of taking one each (Docs/Delivery.md).
    ///
    /// The store keeps the response's answers even when recording then fails (a full queue, a shutdown):
    /// that is harmless, since merging is idempotent and the messageIds are deterministic, so the host can
    /// simply record the response again (Refiner retries a webhook answered 503).
    ///
    /// - Returns: The messages recorded, in sending order.
    /// - Throws: ``RefinerSegmentError`` when the response is invalid (nothing is applied or recorded),
    ///   what the store throws (nothing is recorded), ``SegmentDeliveryError`` when the calls cannot be
    ///   accepted, or `CancellationError` when the task is cancelled while it waits for its records.
    @discardableResult
    public nonisolated func record(
        _ response: SurveyResponse,
        profiles: some ProfileStore,
        builder: SegmentCallBuilder
    ) async throws -> [SegmentMessage] {
        let changes = try builder.changes(for: response)
        return try await profiles.recordingOrder.withRecords(changes.keys) { records in
            let profile = try await profiles.apply(changes)
            let messages = try builder.encodeMessages(for: response, profile: profile)
            // Released once the messages are written in order (a staged store, before its fsync), else when
            // `record` returns or throws.
            try await record(messages, whenOrdered: { records.release() })
            return messages
        }
    }
}
