#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SegmentPipeline {
    /// Sends what the store holds and whatever is recorded, until a graceful shutdown has drained or its
    /// grace period has passed, or until the calling task is cancelled.
    ///
    /// All sending runs in child tasks of this call (a task group): nothing outlives it. It first asks the
    /// store to ``SegmentMessageStore/recover(tenant:)`` (a durable store's leftovers from an earlier run are
    /// sent first; records it could not read back are reported as ``SegmentOutcome/failed(_:reason:)``).
    ///
    /// - After ``triggerGracefulShutdown()``: `record` throws ``SegmentDeliveryError/Code/shutDown``, the
    ///   pipeline sends what is left (linger and pauses still apply, retries too) for at most
    ///   ``Configuration/shutdownGracePeriod``, then stops as on cancellation.
    /// - On cancellation it stops at once: requests in flight are cancelled, their messages go back to the
    ///   store unsettled. A durable store keeps everything not yet delivered or failed for the next run;
    ///   the in-memory store hands it back (``SegmentOutcome/handedBack(_:)``, ``handedBackMessages``).
    ///
    /// When it returns, callers waiting to record get ``SegmentDeliveryError/Code/shutDown``, ``flush()``
    /// callers return, and the outcome streams finish. A pipeline runs once.
    ///
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/storeFailure`` when the store
    ///   cannot recover, and ``SegmentDeliveryError/Code/invalidConfiguration`` when called a second time.
    public func run() async throws {
        guard lifecycle == .idle else {
            throw SegmentDeliveryError(code: .invalidConfiguration, detail: "a pipeline runs only once")
        }
        lifecycle = .running
        do {
            try await recover()
        } catch {
            await stop()
            recovered.signalForever()
            throw error
        }
        recovered.signalForever()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runWorkers() }
            group.addTask { await self.superviseShutdown() }
            // Whichever ends first (the workers drained, or the grace period passed) ends the other.
            _ = await group.next()
            group.cancelAll()
            await group.waitForAll()
        }
        await stop()
    }

    /// Asks the pipeline to stop gracefully: it accepts no more messages, sends what is left within
    /// ``Configuration/shutdownGracePeriod``, and then ``run()`` returns. Safe to call from any task, at any
    /// time, more than once (swift-service-lifecycle's `withGracefulShutdownHandler` calls it); before
    /// ``run()`` starts, the run drains at once.
    public nonisolated func triggerGracefulShutdown() {
        shutdownRequested.signalForever()
    }

    /// Runs a pipeline around `body`: ``run()`` in a child task, `body` with the pipeline, then a graceful
    /// shutdown (also when `body` throws), returning when ``run()`` has returned.
    ///
    /// For scripts, tests and commands whose pipeline lives as long as one piece of work. Services run
    /// ``run()`` themselves under their lifecycle.
    ///
    /// ```swift
    /// let handedBack = try await SegmentPipeline.withPipeline(writeKey: key, transport: transport) { pipeline in
    ///     try await pipeline.record(contentsOf: units)
    ///     await pipeline.flush()
    ///     return await pipeline.counters
    /// }
    /// ```
    ///
    /// - Parameters: As ``init(writeKey:transport:configuration:store:tenant:clock:wallClock:jitter:)``.
    /// - Returns: What `body` returns.
    /// - Throws: What the initializer, `body` or ``run()`` throws.
    public static func withPipeline<C: Clock, Result>(
        writeKey: WriteKey,
        transport: some SegmentTransport,
        configuration: Configuration = Configuration(),
        store: (any SegmentMessageStore)? = nil,
        tenant: String = "default",
        clock: C = ContinuousClock(),
        wallClock: @escaping @Sendable () -> Date = { Date() },
        isolation: isolated (any Actor)? = #isolation,
        _ body: (SegmentPipeline) async throws -> Result
    ) async throws -> Result where C.Duration == Duration {
        let pipeline = try SegmentPipeline(
            writeKey: writeKey, transport: transport, configuration: configuration, store: store, tenant: tenant,
            clock: clock, wallClock: wallClock)
        return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
            group.addTask { try await pipeline.run() }
            let result: Result
            do {
                result = try await body(pipeline)
            } catch {
                pipeline.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            pipeline.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    private func recover() async throws {
        try await recoverWithoutAppends { try await recoverNow() }
    }

    private func recoverNow() async throws {
        let recovery: SegmentStoreRecovery
        do {
            recovery = try await store.recover(tenant: tenant)
        } catch {
            throw SegmentDeliveryError(
                code: .storeFailure, underlyingDescription: redact(String(describing: error)), underlying: error,
                detail: "the store could not recover")
        }
        for damage in recovery.damage {
            emit(
                .failed(
                    [],
                    reason: SegmentDeliveryError(
                        code: .storeDamaged,
                        detail: "the store could not read back \(damage); what it held is lost")))
        }
        // What was recorded before run() is already counted; what an earlier run left comes on top.
        let earlier = max(0, recovery.messages - counters.queuedMessages)
        storedThrough += earlier
        counters.queuedMessages += earlier
        if earlier > 0 { oldestUnclaimed = clock.now() - configuration.linger }
        if let end = recovery.pausedUntil {
            // A pause comes from a `Retry-After`, capped at `maximumRetryAfter` when it was set: one kept
            // longer (a changed policy, a damaged or crafted store) is cut to that cap.
            let left = Duration.seconds(
                clamping: end.timeIntervalSince(wallClock()), to: configuration.retry.maximumRetryAfter)
            if left > .zero { pausedUntil = clock.now() + left }
        }
    }

    /// Waits for a graceful shutdown, then for the grace period; returns early when cancelled (the workers
    /// drained first).
    private func superviseShutdown() async {
        guard await shutdownRequested.wait() == .signalled else { return }
        beginDraining()
        if isDrained { return }
        do {
            try await clock.sleep(for: configuration.shutdownGracePeriod)
        } catch {
            return
        }
    }

    private func beginDraining() {
        guard lifecycle == .running else { return }
        lifecycle = .draining
        spaceWaiters.signalAll()  // each sees the shutdown and throws
        work.signalAll()  // lingering workers send at once, idle ones stop
        resumeFlushWaiters()
    }

    /// Nothing claimable, nothing in flight.
    var isDrained: Bool { inFlightStarts.isEmpty && claimedThrough >= storedThrough }

    /// After the workers stopped: hands back what a store in memory holds, wakes every waiter, finishes the
    /// outcome streams.
    private func stop() async {
        lifecycle = .stopped
        spaceWaiters.signalForever()
        if let rest = try? await store.handBack(tenant: tenant), !rest.isEmpty {
            counters.handedBack += rest.count
            handedBack.append(contentsOf: rest)
            emit(.handedBack(rest))
        }
        counters.queuedMessages = 0
        counters.queuedBytes = 0
        counters.inFlightMessages = 0
        let streams = subscribers.withLock { subscribers in
            defer { subscribers = [:] }
            return Array(subscribers.values)
        }
        for continuation in streams { continuation.finish() }
        resumeFlushWaiters()
    }
}
