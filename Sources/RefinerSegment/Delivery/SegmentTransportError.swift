/// A failure a transport throws when it knows whether sending again can help.
///
/// A transport that throws any other error is retried by the pipeline (a connection failure or a timeout
/// usually passes). Some failures never pass on their own: a certificate the client does not trust, a failed
/// TLS handshake, a request the transport cannot form. Retrying those for the retry policy's 12 hours only
/// hides a misconfiguration, so a transport throws ``permanent(_:underlying:)`` for them and the pipeline
/// fails the batch at once with the reason.
///
/// The detail must not contain the write key (see ``SegmentTransport``).
public struct SegmentTransportError: Error, Sendable, CustomStringConvertible {
    /// Whether sending the same request again may succeed.
    public let isRetryable: Bool
    /// What went wrong, in words.
    public let detail: String
    /// The error the HTTP layer threw, when there is one.
    public let underlying: (any Error)?

    private init(isRetryable: Bool, detail: String, underlying: (any Error)?) {
        self.isRetryable = isRetryable
        self.detail = detail
        self.underlying = underlying
    }

    /// A failure that sending again cannot mend (a TLS certificate or handshake failure): the pipeline fails
    /// the batch at once.
    public static func permanent(_ detail: String, underlying: (any Error)? = nil) -> SegmentTransportError {
        SegmentTransportError(isRetryable: false, detail: detail, underlying: underlying)
    }

    /// A failure that may pass (a dropped connection, a timeout): the pipeline retries by its policy.
    public static func retryable(_ detail: String, underlying: (any Error)? = nil) -> SegmentTransportError {
        SegmentTransportError(isRetryable: true, detail: detail, underlying: underlying)
    }

    /// The detail, and whether it is retried.
    public var description: String { detail + (isRetryable ? "" : " (not retried)") }
}
