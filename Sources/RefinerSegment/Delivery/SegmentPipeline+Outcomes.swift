extension SegmentPipeline {
    /// Returns once every message accepted before the call is delivered, has failed for good, or the
    /// pipeline has stopped. While someone flushes, batches are cut without waiting for the linger.
    public func flush() async {
        let target = storedThrough
        guard lifecycle != .stopped, doneThrough < target else { return }
        work.signalAll()  // a lingering worker sends at once
        await withCheckedContinuation { flushWaiters.append((target, $0)) }
    }

    /// As ``flush()``, but first waits until ``run()`` has recovered what the store held (or has stopped), so
    /// that a durable store's messages from an earlier run are waited for too.
    ///
    /// A ``flush()`` before the recovery returns at once when nothing was recorded yet: the pipeline does not
    /// know yet what the store holds (`refiner-segment send --store DIR /dev/null`, the store's drain, would
    /// end after the grace period with messages left). Call it only while ``run()`` runs or is about to.
    package func flushAfterRecovery() async {
        _ = await recovered.wait()
        await flush()
    }

    /// A stream of what becomes of recorded messages, from now on, until ``run()`` returns.
    ///
    /// Each call makes a new stream; every stream sees every outcome. Subscribe before recording to see
    /// them all. The stream holds at most what `bufferingPolicy` allows (by default the oldest 10,000
    /// outcomes not yet read; later ones are dropped from this stream, never from delivery): pick a policy
    /// that fits how fast the stream is read, and use ``counters`` for totals. A stream that is released is
    /// unsubscribed.
    public func outcomes(
        bufferingPolicy: AsyncStream<SegmentOutcome>.Continuation.BufferingPolicy = .bufferingOldest(10_000)
    ) -> AsyncStream<SegmentOutcome> {
        let (stream, continuation) = AsyncStream.makeStream(of: SegmentOutcome.self, bufferingPolicy: bufferingPolicy)
        guard lifecycle != .stopped else {
            continuation.finish()
            return stream
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        let subscribers = self.subscribers
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { _ in subscribers.withLock { $0[id] = nil } }
        return stream
    }

    func emit(_ outcome: SegmentOutcome) {
        subscribers.withLock { subscribers in
            for continuation in subscribers.values { continuation.yield(outcome) }
        }
    }

    var hasSubscribers: Bool { subscribers.withLock { !$0.isEmpty } }

    /// Every message before this ordinal is done (delivered, failed, or handed back).
    private var doneThrough: Int {
        min(inFlightStarts.min() ?? .max, claimedThrough)
    }

    func resumeFlushWaiters() {
        guard !flushWaiters.isEmpty else { return }
        let done = lifecycle == .stopped ? Int.max : doneThrough
        var waiting: [(target: Int, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in flushWaiters {
            if waiter.target <= done { waiter.continuation.resume() } else { waiting.append(waiter) }
        }
        flushWaiters = waiting
    }

    /// What a failure reason says of a response body: its length and, unless it repeats the request, a short
    /// excerpt with the write key redacted (``ResponseExcerpt``).
    func text(of body: [UInt8], sent: [UInt8]) -> String? {
        ResponseExcerpt.describe(response: body, sent: sent, secrets: secrets)
    }

    nonisolated func redact(_ text: String) -> String {
        var text = text
        for secret in secrets where !secret.isEmpty && text.contains(secret) {
            text = text.replacing(secret, with: "<redacted>")
        }
        return text
    }
}
