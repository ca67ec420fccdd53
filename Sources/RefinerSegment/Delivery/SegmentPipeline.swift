#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Delivers recorded messages to Segment: it keeps them in a ``SegmentMessageStore``, cuts batches, sends
/// them through a ``SegmentTransport``, retries by Segment's contract and reports what became of every
/// message.
///
/// All sending happens inside ``run()``, which the host awaits (as a swift-service-lifecycle `Service`, or
/// in a task group); ``withPipeline(writeKey:transport:configuration:store:tenant:clock:wallClock:isolation:_:)``
/// scopes one for scripts and tests:
///
/// ```swift
/// try await SegmentPipeline.withPipeline(writeKey: WriteKey(key), transport: URLSessionTransport()) { pipeline in
///     let outcomes = await pipeline.outcomes()       // delivered, retrying, failed, handed back
///     try await pipeline.record(messages)            // an identify and its group, kept together
///     await pipeline.flush()                         // everything recorded so far is delivered or failed
/// }                                                  // then a graceful shutdown
/// ```
///
/// Guarantees (Docs/Delivery.md has the details and the retry table):
/// - Every accepted message ends in exactly one of: delivered, failed (with the reason and the message, so
///   the host can store it), or left in the store when the pipeline stops (a durable store keeps it for the
///   next run; the in-memory store hands it back). Nothing is dropped unreported.
/// - The messages recorded together (one ``record(_:)`` call) travel in the same batch, in order; batches
///   keep Segment's limits (500 KB with the envelope, 2,500 messages). With one batch in flight (the
///   default), messages are sent in the order they were accepted.
/// - The store is bounded: when it is full, ``record(_:)`` waits (or, opt-in, throws).
/// - The write key appears in requests only; never in a description, an error or an outcome.
///
/// One pipeline serves one write key. It holds no global state, so a process may run many (one per
/// tenant); the clock, the jitter, the store and the transport are injected. No task outlives ``run()``.
/// Its description and reflection show the endpoint only.
public actor SegmentPipeline: CustomStringConvertible, CustomReflectable {
    /// The settings the pipeline runs with.
    public nonisolated let configuration: Configuration
    /// The tenant the pipeline's messages belong to in its store: `"default"` unless given.
    public nonisolated let tenant: String
    let writeKey: WriteKey
    let transport: any SegmentTransport
    let store: any SegmentMessageStore
    /// The store when it is the in-memory one, which `record` calls without suspending.
    let memoryStore: InMemoryMessageStore?
    /// The store when it appends in two steps (the file store): group appends overlap their fsyncs.
    let stagedStore: (any SegmentStagedAppendStore)?
    let clock: PipelineClock
    let wallClock: @Sendable () -> Date
    let jitter: @Sendable (Duration) -> Duration
    let batchURL: URL
    let envelopeBytes: Int
    let headerFields: [String: String]
    /// Forms of the write key that must not leak into reports: the key and its Basic credentials.
    let secrets: [String]

    /// What the pipeline has done so far.
    public internal(set) var counters = Counters()

    var lifecycle = Lifecycle.idle
    /// Asked for by ``triggerGracefulShutdown()``, from any task.
    let shutdownRequested = WaitQueue()
    /// Signalled for good once ``run()`` has recovered what the store held, or failed to (``flushAfterRecovery()``).
    let recovered = WaitQueue()
    /// Callers waiting for room in the store, in order.
    let spaceWaiters = WaitQueue()
    /// Workers waiting for messages, or lingering for more.
    let work = WaitQueue()
    var idleWorkers = 0
    var lingeringWorkers = 0
    /// `record` callers of a store that is not in memory, joined into one append (see ``AppendGroup``).
    let appendGroup = Locked(AppendGroup())
    /// Messages appended since the last claim, to wake a lingering worker once a batch is full.
    var appendedSinceClaim = (messages: 0, bytes: 0)
    /// When the oldest unclaimed message was accepted (monotonic), for the linger.
    var oldestUnclaimed: Duration?
    /// No batch is sent before this time (a `Retry-After` pause), on the monotonic clock.
    var pausedUntil: Duration?
    /// The ordinal after the last message the store holds for this pipeline (recovered or accepted).
    var storedThrough = 0
    /// The ordinal of the next message to be claimed.
    var claimedThrough = 0
    /// The ordinal of the first message of each claim in flight (for ``flush()``).
    var inFlightStarts: [Int] = []
    var flushWaiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
    var handedBack: [SegmentMessage] = []
    /// The outcome streams; behind a lock so that a stream let go unsubscribes at once, from any task.
    let subscribers = Locked([Int: AsyncStream<SegmentOutcome>.Continuation]())
    var nextSubscriberID = 0

    enum Lifecycle {
        /// Made, ``run()`` not called yet: `record` fills the store.
        case idle
        case running
        /// Accepting nothing, sending what is left until the grace period passes.
        case draining
        /// ``run()`` returned.
        case stopped
    }

    /// Creates a pipeline. Nothing is sent until ``run()`` runs.
    ///
    /// - Parameters:
    ///   - writeKey: The Segment source's write key.
    ///   - transport: What moves the requests.
    ///   - configuration: Endpoint, bounds, linger, grace period and retry policy.
    ///   - store: Where accepted messages wait; by default an ``InMemoryMessageStore`` bounded by
    ///     ``Configuration/queue``.
    ///   - tenant: The pipeline's tenant in the store (`"default"`).
    ///   - clock: The monotonic clock of every deadline, pause, backoff and linger; inject
    ///     `RefinerSegmentTesting`'s `VirtualClock` in tests.
    ///   - wallClock: The wall-clock now, for `sentAt` and HTTP-date `Retry-After` only.
    ///   - jitter: Turns a backoff delay into the delay actually waited; by default a random delay
    ///     between half the backoff and all of it (``equalJitter(_:)``). Pass `{ $0 }` for none.
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/invalidConfiguration`` when
    ///   the endpoint is plain HTTP off loopback (unless allowed) or carries credentials, a query or a
    ///   fragment, the write key or the library information is malformed, or a bound is out of range.
    public init<C: Clock>(
        writeKey: WriteKey,
        transport: some SegmentTransport,
        configuration: Configuration = Configuration(),
        store: (any SegmentMessageStore)? = nil,
        tenant: String = "default",
        clock: C = ContinuousClock(),
        wallClock: @escaping @Sendable () -> Date = { Date() },
        jitter: @escaping @Sendable (Duration) -> Duration = { SegmentPipeline.equalJitter($0) }
    ) throws(SegmentDeliveryError) where C.Duration == Duration {
        let envelopeBytes = SegmentBatch.envelopeBytes(writeKey: writeKey)
        try Self.validate(configuration, writeKey: writeKey, envelopeBytes: envelopeBytes)
        self.configuration = configuration
        self.tenant = tenant
        self.writeKey = writeKey
        self.transport = transport
        let store = store ?? InMemoryMessageStore(limits: configuration.queue)
        self.store = store
        self.memoryStore = store as? InMemoryMessageStore
        self.stagedStore = store as? any SegmentStagedAppendStore
        self.clock = PipelineClock(clock)
        self.wallClock = wallClock
        self.jitter = jitter
        self.batchURL = configuration.endpoint.batchURL
        self.envelopeBytes = envelopeBytes
        self.headerFields = [
            "Content-Type": "application/json",
            "Authorization": writeKey.basicAuthorization,
            "User-Agent": configuration.library.userAgent,
            "X-Retry-Count": "0",
        ]
        self.secrets = writeKey.redactedForms
    }

    /// `SegmentPipeline(https://api.segment.io)`: the endpoint, never the write key.
    public nonisolated var description: String { "SegmentPipeline(\(configuration.endpoint))" }

    /// A mirror that shows the configuration only, so `dump` cannot reveal the write key.
    public nonisolated var customMirror: Mirror {
        Mirror(self, children: ["configuration": configuration])
    }

    /// A delay between half of `backoff` and all of it, at random ("equal jitter"), so that many
    /// senders that failed together do not retry together.
    public static func equalJitter(_ backoff: Duration) -> Duration {
        backoff / 2 + .seconds(Double.random(in: 0...1) * backoff.seconds / 2)
    }

    /// The messages handed back when the pipeline stopped (the in-memory store's leftovers), in accepted
    /// order; empty while it runs, and with a durable store.
    public var handedBackMessages: [SegmentMessage] { handedBack }
}
