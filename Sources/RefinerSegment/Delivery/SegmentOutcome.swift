/// What became of a batch of recorded messages, as the pipeline reports it.
///
/// Every accepted message ends in exactly one of ``delivered(_:statusCode:)``, ``failed(_:reason:)`` or
/// ``handedBack(_:)``; ``retrying(_:retryCount:delay:reason:)`` may come before the first two. Outcomes are
/// per batch, so reporting costs nothing per message. Subscribe with ``SegmentPipeline/outcomes()``.
public enum SegmentOutcome: Sendable, Hashable {
    /// Segment answered 2xx: the messages are delivered.
    case delivered(_ messages: [SegmentMessage], statusCode: Int)
    /// The attempt failed and will be retried after `delay` (a backoff, or a `Retry-After` pause).
    /// `retryCount` is the `X-Retry-Count` the next attempt carries.
    case retrying(_ messages: [SegmentMessage], retryCount: Int, delay: Duration, reason: SegmentDeliveryError)
    /// The messages will not be delivered: the server refused them, or the retry budget ran out. The reason
    /// says which; store the messages (their JSON) to send them again later.
    case failed(_ messages: [SegmentMessage], reason: SegmentDeliveryError)
    /// Shutdown's deadline came before the messages could be delivered: they were neither sent nor refused.
    /// ``SegmentPipeline/shutdown(deadline:)`` returns them too.
    case handedBack(_ messages: [SegmentMessage])

    /// The messages the outcome is about.
    public var messages: [SegmentMessage] {
        switch self {
        case .delivered(let messages, _), .retrying(let messages, _, _, _), .failed(let messages, _),
            .handedBack(let messages):
            return messages
        }
    }
}
