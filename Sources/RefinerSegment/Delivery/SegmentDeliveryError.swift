/// Why delivery did not happen: a refused or failed request, an exhausted retry budget, a full or closed
/// queue, a configuration the pipeline cannot use.
///
/// One error for the delivery boundary, as ``RefinerSegmentError`` is the one for building: the ``code``
/// says what kind of problem it is (new codes may come in minor releases; keep a default when switching),
/// and ``statusCode``, ``responseBody`` and ``underlyingDescription`` carry the server's answer or the
/// transport's failure in words when there is one, with ``underlying`` the error itself. The words never
/// contain the write key: the pipeline redacts the key from server answers and transport errors before
/// they reach an error. The ``underlying`` error is the transport's own, as it was thrown: the description
/// and the mirror leave it out, so printing or dumping the error cannot show a key a transport put in it.
///
/// Errors are made by the pipeline only (no public initializer), so new fields and codes can come.
public struct SegmentDeliveryError: Error, Sendable, CustomStringConvertible, CustomReflectable {
    /// What kind of problem an error reports. Compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case rejected = "rejected by the server"
            case retryableStatus = "retryable server answer"
            case transportFailure = "transport failure"
            case attemptsExhausted = "retry attempts exhausted"
            case retryTimeExhausted = "retry time exhausted"
            case queueFull = "queue full"
            case shutDown = "pipeline shut down"
            case cancelled = "cancelled"
            case unitTooLarge = "messages too large for one batch"
            case messageTooLarge = "message too large"
            case invalidConfiguration = "invalid configuration"
            case redirected = "redirected"
            case storeFailure = "message store failure"
            case storeDamaged = "damaged in the message store"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The server answered with a status that is not retried (400, 401, 403, 404, 413, 422, other 4xx,
        /// 501, 505): the batch is dropped and reported. ``SegmentDeliveryError/statusCode`` and
        /// ``SegmentDeliveryError/responseBody`` hold the answer.
        public static let rejected = Code(.rejected)
        /// The server answered with a status that is retried (408, 410, 429, 460, other 5xx). Reported with
        /// a retry, never as the final reason.
        public static let retryableStatus = Code(.retryableStatus)
        /// The transport threw: a connection failure or a timeout, reported with a retry; or a failure the
        /// transport says cannot pass (``SegmentTransportError/permanent(_:underlying:)``, such as a TLS
        /// failure), which fails the batch at once.
        public static let transportFailure = Code(.transportFailure)
        /// The batch failed as many times as the retry policy allows; the last failure's status or error is
        /// kept.
        public static let attemptsExhausted = Code(.attemptsExhausted)
        /// The next retry would fall past the retry policy's time bound since the first failure.
        public static let retryTimeExhausted = Code(.retryTimeExhausted)
        /// The queue is full and the pipeline is set to fail fast instead of waiting.
        public static let queueFull = Code(.queueFull)
        /// The pipeline is shutting down or shut down and accepts nothing more.
        public static let shutDown = Code(.shutDown)
        /// The task recording the messages was cancelled while it waited for room in the queue; nothing was
        /// accepted.
        public static let cancelled = Code(.cancelled)
        /// The messages recorded together cannot fit in one batch (500 KB including the envelope, 2,500
        /// messages), so they could never be sent together.
        public static let unitTooLarge = Code(.unitTooLarge)
        /// A message is larger than Segment accepts (32 KB by default); nothing was accepted.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// A configuration value cannot be used (an endpoint, a bound).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The server answered with a redirect (3xx), which is never followed: the endpoint is
        /// misconfigured. The batch fails for good; the detail names the `Location`.
        public static let redirected = Code(.redirected)
        /// The message store could not append, claim, settle or say what it holds, or could not read back
        /// units it keeps (``SegmentClaim/unreadable``); ``SegmentDeliveryError/underlying`` is its error.
        public static let storeFailure = Code(.storeFailure)
        /// The message store found a record it cannot read back (a checksum mismatch, on open or at a
        /// claim): what it held is lost, and reported with this code instead of vanishing.
        public static let storeDamaged = Code(.storeDamaged)

        /// The code in words.
        public var description: String { base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The HTTP status of the server's answer, when there was one.
    public var statusCode: Int?
    /// The server's answer in short, when there was one: its length and, unless it repeats the request, its
    /// start (at most 160 bytes, escaped, the write key redacted).
    public var responseBody: String?
    /// The transport's (or the store's) error in words, the write key redacted, when one was thrown.
    public var underlyingDescription: String?
    /// The error the transport or the store threw, as it was, when there was one. Not redacted: do not
    /// print it where the write key must not appear; ``underlyingDescription`` is the printable form.
    public var underlying: (any Error)?
    /// More about what was wrong, in words.
    public var detail: String

    init(
        code: Code,
        statusCode: Int? = nil,
        responseBody: String? = nil,
        underlyingDescription: String? = nil,
        underlying: (any Error)? = nil,
        detail: String = ""
    ) {
        self.code = code
        self.statusCode = statusCode
        self.responseBody = responseBody
        self.underlyingDescription = underlyingDescription
        self.underlying = underlying
        self.detail = detail
    }

    /// A mirror without ``underlying``, so `dump` shows only redacted text.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "code": code.description, "statusCode": statusCode as Any, "responseBody": responseBody as Any,
                "underlyingDescription": underlyingDescription as Any, "detail": detail,
            ])
    }

    /// The code, the detail, the status and answer or the underlying error, for a log line or a person.
    public var description: String {
        var text = code.description
        if !detail.isEmpty { text += ": " + detail }
        if let statusCode { text += " (HTTP \(statusCode)" + (responseBody.map { ": \($0)" } ?? "") + ")" }
        if let underlyingDescription { text += " (" + underlyingDescription + ")" }
        // The server's answer and the transport's words are quoted: keep the report on one line.
        return LogText.singleLine(text)
    }
}
