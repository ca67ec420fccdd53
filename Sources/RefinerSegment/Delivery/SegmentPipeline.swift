#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Delivers recorded messages to Segment: it queues them, cuts batches, sends them through a
/// ``SegmentTransport``, retries by Segment's contract and reports what became of every message.
///
/// ```swift
/// let pipeline = try SegmentPipeline(writeKey: WriteKey(key), transport: URLSessionTransport())
/// let outcomes = await pipeline.outcomes()          // delivered, retrying, failed, handed back
/// try await pipeline.record(messages)               // an identify and its group, kept together
/// await pipeline.flush()                            // everything recorded so far is delivered or failed
/// let undelivered = await pipeline.shutdown(deadline: .now + 10)
/// ```
///
/// Guarantees (Docs/Delivery.md has the details and the retry table):
/// - Every accepted message ends in exactly one of: delivered, failed (with the reason and the message, so
///   the host can store it), or handed back by ``shutdown(deadline:)``. Nothing is dropped unreported.
/// - The messages recorded together (one ``record(_:)`` call) travel in the same batch, in order; batches
///   keep Segment's limits (500 KB with the envelope, 2,500 messages). With one batch in flight (the
///   default), messages are sent in the order they were accepted.
/// - Memory is bounded: when the queue is full, ``record(_:)`` waits (or, opt-in, throws).
/// - The write key appears in requests only; never in a description, an error or an outcome.
///
/// One pipeline serves one write key. It holds no global state, so a process may run many (one per
/// tenant); the clock, the jitter and the transport are injected. Its sending tasks keep it alive until
/// ``shutdown(deadline:)``, so shut a pipeline down before letting it go. Its description and reflection
/// show the endpoint only.
public actor SegmentPipeline: CustomStringConvertible, CustomReflectable {
    /// The settings the pipeline runs with.
    public nonisolated let configuration: Configuration
    private let writeKey: WriteKey
    private let transport: any SegmentTransport
    private let clock: DeliveryClock
    private let jitter: @Sendable (Duration) -> Duration
    private let batchURL: URL
    private let envelopeBytes: Int
    private let headerFields: [String: String]
    /// Forms of the write key that must not leak into reports: the key and its Basic credentials.
    private let secrets: [String]

    /// What the pipeline has done so far.
    public private(set) var counters = Counters()

    private var queue = MessageQueue()
    private var spaceWaiters: [SpaceWaiter] = []
    private var nextWaiterID = 0
    private var idleWorkers: [CheckedContinuation<Void, Never>] = []
    private var flushWaiters: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    private var workers: [Task<Void, Never>] = []
    private var activeWorkers = 0
    /// The sequence numbers of the first message of each batch in flight (for ``flush()``).
    private var inFlightStarts: [Int] = []
    /// When a `Retry-After` pause ends; no batch is sent before.
    private var pausedUntil: Date?
    private var state = State.running
    private var deadlineTask: Task<Void, Never>?
    /// What was handed back, by the sequence number of its first message, so it returns in accepted order.
    private var handedBack: [(start: Int, messages: [SegmentMessage])] = []
    private var subscribers: [Int: AsyncStream<SegmentOutcome>.Continuation] = [:]
    private var nextSubscriberID = 0

    private enum State {
        case running, shuttingDown, pastDeadline, shutDown
    }

    private struct SpaceWaiter {
        var id: Int
        var unit: [SegmentMessage]
        var bytes: Int
        var continuation: CheckedContinuation<SegmentDeliveryError?, Never>
    }

    /// Creates a pipeline. Nothing is sent until messages are recorded.
    ///
    /// - Parameters:
    ///   - writeKey: The Segment source's write key.
    ///   - transport: What moves the requests.
    ///   - configuration: Endpoint, bounds and retry policy.
    ///   - clock: The wall clock and sleep; inject a virtual one in tests.
    ///   - jitter: Turns a backoff delay into the delay actually waited; by default a random delay
    ///     between half the backoff and all of it (``equalJitter(_:)``). Pass `{ $0 }` for none.
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/invalidConfiguration`` when
    ///   the endpoint is plain HTTP off loopback (unless allowed) or carries credentials, a query or a
    ///   fragment, the write key or the library information is malformed, or a bound is out of range.
    public init(
        writeKey: WriteKey,
        transport: some SegmentTransport,
        configuration: Configuration = Configuration(),
        clock: DeliveryClock = .system,
        jitter: @escaping @Sendable (Duration) -> Duration = { SegmentPipeline.equalJitter($0) }
    ) throws(SegmentDeliveryError) {
        let envelopeBytes = SegmentBatch.envelopeBytes(writeKey: writeKey)
        try Self.validate(configuration, writeKey: writeKey, envelopeBytes: envelopeBytes)
        self.configuration = configuration
        self.writeKey = writeKey
        self.transport = transport
        self.clock = clock
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

    // MARK: Recording

    /// Accepts messages that travel together (an `identify` and its `group`): they are queued as one unit,
    /// never split across batches, and kept in order.
    ///
    /// Returns once the messages are accepted. When the queue is full it waits for room, in order with
    /// other waiting callers (or throws, with ``FullQueuePolicy/fail``).
    ///
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/queueFull`` (fail-fast
    ///   policy), ``SegmentDeliveryError/Code/shutDown``, ``SegmentDeliveryError/Code/cancelled`` (the task
    ///   was cancelled while waiting), ``SegmentDeliveryError/Code/messageTooLarge`` or
    ///   ``SegmentDeliveryError/Code/unitTooLarge``. Nothing is accepted when it throws.
    public func record(_ messages: [SegmentMessage]) async throws(SegmentDeliveryError) {
        guard !messages.isEmpty else { return }
        let bytes = try check(messages)
        try await accept(messages, bytes: bytes)
    }

    /// Accepts many units in order, as ``record(_:)`` does each of them, with one call into the actor.
    ///
    /// - Throws: As ``record(_:)``, for the first unit that cannot be accepted; the units before it were
    ///   accepted, the ones after it were not.
    public func record(contentsOf units: [[SegmentMessage]]) async throws(SegmentDeliveryError) {
        for unit in units where !unit.isEmpty {
            let bytes = try check(unit)
            try await accept(unit, bytes: bytes)
        }
    }

    private func check(_ unit: [SegmentMessage]) throws(SegmentDeliveryError) -> Int {
        guard state == .running else {
            throw SegmentDeliveryError(code: .shutDown, detail: "the pipeline accepts no more messages")
        }
        let limits = configuration.batch
        for message in unit where message.byteCount > limits.maximumMessageBytes {
            throw SegmentDeliveryError(
                code: .messageTooLarge,
                detail: "message '\(message.messageID)'"
                    + (message.responseID.map { " from response '\($0)'" } ?? "")
                    + " is \(message.byteCount) bytes, more than \(limits.maximumMessageBytes)"
            )
        }
        let bytes = MessageQueue.bytes(of: unit)
        guard unit.count <= limits.maximumMessages, envelopeBytes + bytes <= limits.maximumBytes else {
            throw SegmentDeliveryError(
                code: .unitTooLarge,
                detail: "\(unit.count) messages of \(bytes) bytes"
                    + (unit.first?.responseID.map { " from response '\($0)'" } ?? "")
                    + " do not fit in one batch of at most \(limits.maximumMessages) messages and "
                    + "\(limits.maximumBytes) bytes with its envelope"
            )
        }
        return bytes
    }

    private func accept(_ unit: [SegmentMessage], bytes: Int) async throws(SegmentDeliveryError) {
        if spaceWaiters.isEmpty, fits(count: unit.count, bytes: bytes) {
            enqueue(unit, bytes: bytes)
            return
        }
        guard configuration.queue.whenFull == .wait else {
            throw SegmentDeliveryError(
                code: .queueFull,
                detail: "\(queue.messageCount) messages of \(queue.byteCount) bytes are waiting to be sent"
            )
        }
        let id = nextWaiterID
        nextWaiterID += 1
        // The waker enqueues the unit on our behalf before resuming us, so no one can take the room first.
        let error: SegmentDeliveryError? = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: Self.cancelledError)
                } else {
                    spaceWaiters.append(SpaceWaiter(id: id, unit: unit, bytes: bytes, continuation: continuation))
                    counters.waitingToRecord = spaceWaiters.count
                }
            }
        } onCancel: {
            Task { await self.cancelSpaceWaiter(id) }
        }
        if let error { throw error }
    }

    private static let cancelledError = SegmentDeliveryError(
        code: .cancelled, detail: "the task was cancelled while it waited for room in the queue")

    private func cancelSpaceWaiter(_ id: Int) {
        guard let index = spaceWaiters.firstIndex(where: { $0.id == id }) else { return }
        spaceWaiters.remove(at: index).continuation.resume(returning: Self.cancelledError)
        counters.waitingToRecord = spaceWaiters.count
        admitSpaceWaiters()  // the next in line may fit where the cancelled one did not
    }

    private func fits(count: Int, bytes: Int) -> Bool {
        queue.isEmpty
            || (queue.messageCount + count <= configuration.queue.maximumMessages
                && queue.byteCount + bytes <= configuration.queue.maximumBytes)
    }

    private func enqueue(_ unit: [SegmentMessage], bytes: Int) {
        queue.append(unit, bytes: bytes)
        counters.accepted += unit.count
        counters.queuedMessages = queue.messageCount
        counters.queuedBytes = queue.byteCount
        startWorkersIfNeeded()
        if !idleWorkers.isEmpty { idleWorkers.removeFirst().resume() }
    }

    /// Lets waiting callers in, in order, while their units fit.
    private func admitSpaceWaiters() {
        while let first = spaceWaiters.first, state == .running, fits(count: first.unit.count, bytes: first.bytes) {
            spaceWaiters.removeFirst()
            counters.waitingToRecord = spaceWaiters.count
            enqueue(first.unit, bytes: first.bytes)
            first.continuation.resume(returning: nil)
        }
    }

    // MARK: Flush, shutdown, outcomes

    /// Returns once every message accepted before the call is delivered, has failed for good, or has been
    /// handed back.
    public func flush() async {
        let target = counters.accepted
        guard state != .shutDown, doneThrough < target else { return }
        await withCheckedContinuation { flushWaiters.append((target, $0)) }
    }

    /// Stops accepting messages, keeps delivering until everything is done or the deadline comes, and
    /// returns what was not delivered.
    ///
    /// At the deadline, queued messages and the batches in flight (their requests are cancelled) are handed
    /// back: reported as ``SegmentOutcome/handedBack(_:)`` and returned, in order, for the host to store
    /// and send again later. Callers waiting to record get ``SegmentDeliveryError/Code/shutDown``.
    /// Calling it again returns the same messages. The outcome streams finish afterwards.
    ///
    /// - Parameter deadline: A time on the pipeline's clock.
    /// - Returns: The messages handed back; empty when everything was delivered or failed.
    @discardableResult
    public func shutdown(deadline: Date) async -> [SegmentMessage] {
        if state == .running {
            state = .shuttingDown
            let waiters = spaceWaiters
            spaceWaiters = []
            counters.waitingToRecord = 0
            for waiter in waiters {
                waiter.continuation.resume(
                    returning: SegmentDeliveryError(code: .shutDown, detail: "the pipeline is shutting down"))
            }
            resumeIdleWorkers()
            if activeWorkers == 0 {
                finishShutdown()
            } else {
                let delay = deadline.timeIntervalSince(clock.now())
                deadlineTask = Task { [clock] in
                    if delay > 0 {
                        do { try await clock.sleep(.seconds(delay)) } catch { return }
                    }
                    self.deadlineReached()
                }
            }
        }
        if state != .shutDown {
            await withCheckedContinuation { shutdownWaiters.append($0) }
        }
        return handedBack.sorted { $0.start < $1.start }.flatMap(\.messages)
    }

    /// A stream of what becomes of recorded messages, from now on, until shutdown ends.
    ///
    /// Each call makes a new stream; every stream sees every outcome. Subscribe before recording to see
    /// them all. A stream buffers without bound, so consume it (or let it go: a stream that is released
    /// is unsubscribed).
    public func outcomes() -> AsyncStream<SegmentOutcome> {
        let (stream, continuation) = AsyncStream.makeStream(of: SegmentOutcome.self)
        guard state != .shutDown else {
            continuation.finish()
            return stream
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeSubscriber(id) }
        }
        return stream
    }

    private func removeSubscriber(_ id: Int) {
        subscribers[id] = nil
    }

    private func emit(_ outcome: SegmentOutcome) {
        for continuation in subscribers.values { continuation.yield(outcome) }
    }

    private var doneThrough: Int {
        min(inFlightStarts.min() ?? .max, queue.removedCount)
    }

    private func resumeFlushWaiters() {
        guard !flushWaiters.isEmpty else { return }
        let done = state == .shutDown ? Int.max : doneThrough
        var waiting: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in flushWaiters {
            if waiter.target <= done { waiter.continuation.resume() } else { waiting.append(waiter) }
        }
        flushWaiters = waiting
    }

    private func resumeIdleWorkers() {
        let waiting = idleWorkers
        idleWorkers = []
        for worker in waiting { worker.resume() }
    }

    private func deadlineReached() {
        guard state == .shuttingDown else { return }
        state = .pastDeadline
        // Workers hand back their batches as they stop; the queue follows them in finishShutdown.
        for worker in workers { worker.cancel() }
        resumeIdleWorkers()
        resumeFlushWaiters()
    }

    private func finishShutdown() {
        let start = queue.removedCount
        let rest = queue.removeAll()
        counters.queuedMessages = 0
        counters.queuedBytes = 0
        if !rest.isEmpty { handBack(rest, start: start) }
        state = .shutDown
        deadlineTask?.cancel()
        deadlineTask = nil
        for continuation in subscribers.values { continuation.finish() }
        subscribers = [:]
        let waiters = shutdownWaiters
        shutdownWaiters = []
        for waiter in waiters { waiter.resume() }
        resumeFlushWaiters()
    }

    // MARK: Sending

    private func startWorkersIfNeeded() {
        guard workers.isEmpty, state == .running else { return }
        for _ in 0..<configuration.maximumBatchesInFlight {
            activeWorkers += 1
            workers.append(Task { await self.runWorker() })
        }
    }

    private func runWorker() async {
        while let (messages, start) = await nextBatch() {
            await deliver(messages, start: start)
            counters.inFlightMessages -= messages.count
            if let index = inFlightStarts.firstIndex(of: start) { inFlightStarts.remove(at: index) }
            resumeFlushWaiters()
        }
        activeWorkers -= 1
        if activeWorkers == 0, state != .running { finishShutdown() }
    }

    /// The next batch to send, waiting for messages while the pipeline runs; `nil` when the worker is done.
    private func nextBatch() async -> (messages: [SegmentMessage], start: Int)? {
        while true {
            if state == .pastDeadline { return nil }
            let start = queue.removedCount
            if let batch = queue.cutBatch(
                maximumMessages: configuration.batch.maximumMessages,
                maximumBodyBytes: configuration.batch.maximumBytes - envelopeBytes
            ) {
                inFlightStarts.append(start)
                counters.inFlightMessages += batch.count
                counters.queuedMessages = queue.messageCount
                counters.queuedBytes = queue.byteCount
                admitSpaceWaiters()
                return (batch, start)
            }
            if state != .running { return nil }
            await withCheckedContinuation { idleWorkers.append($0) }
        }
    }

    /// Sends one batch until it is delivered, fails for good, or is handed back at the deadline.
    private func deliver(_ messages: [SegmentMessage], start batchStart: Int) async {
        let policy = configuration.retry
        var retryCount = 0
        var failures = 0
        var firstFailure: Date?
        while true {
            if let pausedUntil {
                let wait = pausedUntil.timeIntervalSince(clock.now())
                if wait > 0 {
                    do {
                        try await clock.sleep(.seconds(wait))
                    } catch {
                        return handBack(messages, start: batchStart)
                    }
                }
            }
            if state == .pastDeadline || Task.isCancelled { return handBack(messages, start: batchStart) }
            let request = makeRequest(messages, retryCount: retryCount)
            counters.requests += 1
            let failure: SegmentDeliveryError
            var pause: Duration?
            do {
                let response = try await transport.send(request)
                switch SegmentRetryPolicy.disposition(forStatus: response.statusCode) {
                case .success:
                    counters.delivered += messages.count
                    return emit(.delivered(messages, statusCode: response.statusCode))
                case .drop:
                    return fail(
                        messages,
                        SegmentDeliveryError(
                            code: .rejected, statusCode: response.statusCode,
                            responseBody: text(of: response.body, sent: request.body),
                            detail: "the server refused the batch, which is not retried"
                        )
                    )
                case .retry:
                    failure = SegmentDeliveryError(
                        code: .retryableStatus, statusCode: response.statusCode,
                        responseBody: text(of: response.body, sent: request.body))
                    pause = policy.retryAfter(response.headerField("Retry-After"), now: clock.now())
                }
            } catch {
                if state == .pastDeadline || Task.isCancelled { return handBack(messages, start: batchStart) }
                failure = SegmentDeliveryError(code: .transportFailure, underlying: redact(String(describing: error)))
            }
            let failedAt = clock.now()
            let start = firstFailure ?? failedAt
            firstFailure = start
            let delay: Duration
            if let pause {
                delay = pause
            } else {
                failures += 1
                if failures >= policy.maximumAttempts {
                    return fail(messages, exhausted(.attemptsExhausted, failure, "gave up after \(failures) attempts"))
                }
                delay = jitter(policy.backoff(afterFailures: failures))
            }
            if failedAt.adding(delay) > start.adding(policy.maximumRetryDuration) {
                return fail(
                    messages,
                    exhausted(
                        .retryTimeExhausted, failure,
                        "the next retry would come more than "
                            + "\(Int(policy.maximumRetryDuration.seconds)) s after the first failure")
                )
            }
            retryCount += 1
            counters.retries += 1
            emit(.retrying(messages, retryCount: retryCount, delay: delay, reason: failure))
            if pause != nil {
                // Rate limited: the whole pipeline waits (every worker checks `pausedUntil` before sending).
                let until = failedAt.adding(delay)
                if pausedUntil.map({ until > $0 }) ?? true { pausedUntil = until }
            } else {
                do {
                    try await clock.sleep(delay)
                } catch {
                    return handBack(messages, start: batchStart)
                }
            }
        }
    }

    private func makeRequest(_ messages: [SegmentMessage], retryCount: Int) -> SegmentRequest {
        // The headers of a first attempt are built once; a retry copies them with its count.
        var headerFields = self.headerFields
        if retryCount > 0 { headerFields["X-Retry-Count"] = String(retryCount) }
        return SegmentRequest(
            url: batchURL,
            method: "POST",
            headerFields: headerFields,
            // `sentAt` is the time of this attempt: Segment corrects event times with it.
            body: SegmentBatch.encode(messages, sentAt: clock.now(), writeKey: writeKey),
            timeout: configuration.requestTimeout
        )
    }

    private func fail(_ messages: [SegmentMessage], _ reason: SegmentDeliveryError) {
        counters.failed += messages.count
        emit(.failed(messages, reason: reason))
    }

    private func handBack(_ messages: [SegmentMessage], start: Int) {
        counters.handedBack += messages.count
        handedBack.append((start, messages))
        emit(.handedBack(messages))
    }

    private func exhausted(
        _ code: SegmentDeliveryError.Code,
        _ last: SegmentDeliveryError,
        _ detail: String
    ) -> SegmentDeliveryError {
        SegmentDeliveryError(
            code: code, statusCode: last.statusCode, responseBody: last.responseBody, underlying: last.underlying,
            detail: detail + "; last failure: " + last.code.description
        )
    }

    /// What a failure reason says of a response body: its length and, unless it repeats the request, a short
    /// excerpt with the write key redacted (``ResponseExcerpt``).
    private func text(of body: [UInt8], sent: [UInt8]) -> String? {
        ResponseExcerpt.describe(response: body, sent: sent, secrets: secrets)
    }

    private func redact(_ text: String) -> String {
        var text = text
        for secret in secrets where !secret.isEmpty && text.contains(secret) {
            text = text.replacing(secret, with: "<redacted>")
        }
        return text
    }
}
