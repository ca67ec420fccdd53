extension SegmentPipeline {
    /// The pipeline's settings. The defaults are Segment's limits and retry contract.
    public struct Configuration: Sendable, Hashable {
        /// Where batches go: ``SegmentEndpoint/us`` by default.
        public var endpoint: SegmentEndpoint
        /// Whether a plain `http://` endpoint on a host that is not loopback is accepted. Off by default:
        /// the write key travels in every request.
        public var allowsInsecureHTTP: Bool
        /// When to retry and when to give up.
        public var retry: SegmentRetryPolicy
        /// How much the default in-memory store holds before ``SegmentPipeline/record(_:)`` waits (or fails),
        /// and what `record` does when any store is full.
        public var queue: QueueLimits
        /// The largest batch: Segment's 500 KB (envelope included) and 2,500 messages by default. Lower them
        /// to send smaller requests; higher values are refused.
        public var batch: BatchLimits
        /// How many batches may be in flight at once: 1 by default, which keeps messages in order.
        public var maximumBatchesInFlight: Int
        /// The timeout each request carries (``SegmentRequest/timeout``): 30 s.
        public var requestTimeout: Duration
        /// The `User-Agent` names this library and its version.
        public var library: LibraryInfo
        /// How long the oldest waiting message may wait for more to fill its batch: 20 ms. A full batch, a
        /// ``SegmentPipeline/flush()`` and a shutdown send at once; `.zero` sends every batch at once.
        public var linger: Duration
        /// How long a graceful shutdown keeps sending before it stops: 10 s.
        public var shutdownGracePeriod: Duration

        /// Creates a configuration.
        public init(
            endpoint: SegmentEndpoint = .us,
            allowsInsecureHTTP: Bool = false,
            retry: SegmentRetryPolicy = SegmentRetryPolicy(),
            queue: QueueLimits = QueueLimits(),
            batch: BatchLimits = BatchLimits(),
            maximumBatchesInFlight: Int = 1,
            requestTimeout: Duration = .seconds(30),
            library: LibraryInfo = .refinerSegment,
            linger: Duration = .milliseconds(20),
            shutdownGracePeriod: Duration = .seconds(10)
        ) {
            self.linger = linger
            self.shutdownGracePeriod = shutdownGracePeriod
            self.endpoint = endpoint
            self.allowsInsecureHTTP = allowsInsecureHTTP
            self.retry = retry
            self.queue = queue
            self.batch = batch
            self.maximumBatchesInFlight = maximumBatchesInFlight
            self.requestTimeout = requestTimeout
            self.library = library
        }
    }

    /// The queue's bounds and what happens when they are reached.
    ///
    /// Batches being sent are no longer in the queue, so memory holds at most these bounds plus
    /// ``Configuration/maximumBatchesInFlight`` batches.
    public struct QueueLimits: Sendable, Hashable {
        /// The most messages waiting to be sent: 10,000.
        public var maximumMessages: Int
        /// The most bytes of message JSON waiting to be sent: 16 MiB.
        public var maximumBytes: Int
        /// What ``SegmentPipeline/record(_:)`` does when the messages do not fit: wait, by default.
        public var whenFull: FullQueuePolicy

        /// Creates bounds.
        public init(maximumMessages: Int = 10_000, maximumBytes: Int = 16 << 20, whenFull: FullQueuePolicy = .wait) {
            self.maximumMessages = maximumMessages
            self.maximumBytes = maximumBytes
            self.whenFull = whenFull
        }
    }

    /// What recording does when the queue is full.
    public enum FullQueuePolicy: Sendable, Hashable {
        /// Wait until there is room (back-pressure): the caller slows down to the pace of delivery.
        case wait
        /// Throw ``SegmentDeliveryError/Code/queueFull`` at once; nothing is accepted.
        case fail
    }

    /// The largest batch the pipeline sends.
    public struct BatchLimits: Sendable, Hashable {
        /// The most messages in one request: 2,500.
        public var maximumMessages: Int
        /// The most bytes in one request body, envelope included: 500 KB.
        public var maximumBytes: Int
        /// The largest single message: Segment's 32 KB. Segment refuses a batch that holds a larger one, and
        /// with it every other message of the batch, so larger messages are refused at `record`.
        public var maximumMessageBytes: Int

        /// Creates limits; Segment's by default.
        public init(
            maximumMessages: Int = SegmentBatch.maximumMessages,
            maximumBytes: Int = SegmentBatch.maximumBytes,
            maximumMessageBytes: Int = 32 * 1024
        ) {
            self.maximumMessages = maximumMessages
            self.maximumBytes = maximumBytes
            self.maximumMessageBytes = maximumMessageBytes
        }
    }

    /// What the pipeline has done so far, in messages (and requests where it says so).
    public struct Counters: Sendable, Hashable {
        /// Messages accepted by `record`.
        public var accepted = 0
        /// Messages delivered (2xx).
        public var delivered = 0
        /// Messages that failed for good.
        public var failed = 0
        /// Messages handed back when the pipeline stopped (in-memory store).
        public var handedBack = 0
        /// Attempts that failed and were retried (requests, not messages).
        public var retries = 0
        /// Requests sent, retries included.
        public var requests = 0
        /// Messages in the store waiting to be sent now.
        public var queuedMessages = 0
        /// Bytes of message JSON in the store waiting to be sent now.
        public var queuedBytes = 0
        /// Messages in batches being sent now.
        public var inFlightMessages = 0
        /// Calls to `record` waiting for room in the store now (back-pressure at work).
        public var waitingToRecord = 0
        /// Store calls that failed after sending (settling, releasing, keeping a pause): each is reported
        /// as a `.failed([], reason:)` outcome with code `storeFailure`; the messages concerned stay in
        /// the store and a durable one sends them again after a restart (at least once).
        public var storeFailures = 0

        /// Creates counters, all zero.
        public init() {}
    }

    static func validate(
        _ configuration: Configuration,
        writeKey: WriteKey,
        envelopeBytes: Int
    ) throws(SegmentDeliveryError) {
        try validateSecurity(configuration, writeKey: writeKey)
        try configuration.retry.validate()
        func invalid(_ detail: String) -> SegmentDeliveryError {
            SegmentDeliveryError(code: .invalidConfiguration, detail: detail)
        }
        guard !writeKey.rawValue.isEmpty else { throw invalid("the write key is empty") }
        let batch = configuration.batch
        guard (1...SegmentBatch.maximumMessages).contains(batch.maximumMessages) else {
            throw invalid("a batch holds 1 to \(SegmentBatch.maximumMessages) messages")
        }
        guard batch.maximumBytes > envelopeBytes, batch.maximumBytes <= SegmentBatch.maximumBytes else {
            throw invalid("a batch holds more than its envelope and at most \(SegmentBatch.maximumBytes) bytes")
        }
        guard batch.maximumMessageBytes >= 1 else { throw invalid("a message may be at least one byte") }
        guard configuration.queue.maximumMessages >= 1, configuration.queue.maximumBytes >= 1 else {
            throw invalid("the queue must hold at least one message")
        }
        guard configuration.maximumBatchesInFlight >= 1 else { throw invalid("at least one batch must be in flight") }
        guard configuration.requestTimeout > .zero else { throw invalid("the request timeout must be positive") }
        guard configuration.linger >= .zero, configuration.shutdownGracePeriod >= .zero else {
            throw invalid("the linger and the shutdown grace period may not be negative")
        }
    }
}
