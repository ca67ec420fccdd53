/// What became of a batch of recorded messages, as the pipeline reports it.
///
/// Every accepted message ends in exactly one of ``delivered(messageIDs:statusCode:)``,
/// ``failed(_:reason:)`` or ``handedBack(_:)`` (or stays in a durable store when the pipeline stops);
/// ``retrying(messageIDs:retryCount:delay:reason:)`` may come before the first two. Outcomes are per batch,
/// so reporting costs nothing per message, and a delivered batch is reported by its messageIds only, so a
/// slow reader of the stream holds no message bytes. Subscribe with ``SegmentPipeline/outcomes(bufferingPolicy:)``.
public enum SegmentOutcome: Sendable {
    /// Segment answered 2xx: the messages with these ids are delivered.
    case delivered(messageIDs: [String], statusCode: Int)
    /// The attempt failed and will be retried after `delay` (a backoff, or a `Retry-After` pause).
    /// `retryCount` is the `X-Retry-Count` the next attempt carries.
    case retrying(messageIDs: [String], retryCount: Int, delay: Duration, reason: SegmentDeliveryError)
    /// The messages will not be delivered: the server refused them, redirected, the transport says sending
    /// cannot succeed, the retry budget ran out, or the store could not read them back (then `messages` may
    /// be empty and the reason says what was lost). Store the messages (their JSON) to send them again later.
    case failed(_ messages: [SegmentMessage], reason: SegmentDeliveryError)
    /// The pipeline stopped before the messages were delivered, and the store does not survive the process
    /// (the in-memory store): they were neither delivered nor refused. A batch in flight at the stop is
    /// handed back too: Segment may or may not have received it, and its messageIds make sending it again
    /// harmless. ``SegmentPipeline/handedBackMessages`` returns them too.
    case handedBack(_ messages: [SegmentMessage])

    /// The messageIds the outcome is about, in order.
    public var messageIDs: [String] {
        switch self {
        case .delivered(let ids, _), .retrying(let ids, _, _, _): ids
        case .failed(let messages, _), .handedBack(let messages): messages.map(\.messageID)
        }
    }

    /// How many messages the outcome is about.
    public var count: Int {
        switch self {
        case .delivered(let ids, _), .retrying(let ids, _, _, _): ids.count
        case .failed(let messages, _), .handedBack(let messages): messages.count
        }
    }
}
