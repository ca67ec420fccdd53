extension SegmentPipelineGroup {
    /// Runs the group: every open tenant's ``SegmentPipeline/run()`` as a child task (started as the tenant
    /// opens), the relay of its outcomes to ``outcomes(bufferingPolicy:)``, and the closing of idle tenants
    /// (their pipelines shut down gracefully; the store keeps what is left), until a graceful shutdown has
    /// drained every tenant. Nothing it starts outlives it.
    ///
    /// Shaped like swift-service-lifecycle's `Service.run()`: await it in a task of your own (a task group,
    /// a `ServiceGroup`). It returns after ``triggerGracefulShutdown()`` once every tenant has delivered
    /// what it holds or its grace period (``Configuration/gracePeriod``) has passed; cancelling its task
    /// stops every tenant at once and hands back what was not delivered. The outcome streams finish when
    /// it returns.
    ///
    /// - Throws: ``SegmentTenantError`` with code ``SegmentTenantError/Code/alreadyRunning`` when called a
    ///   second time.
    public func run() async throws {
        guard !hasRun else {
            throw SegmentTenantError(code: .alreadyRunning, tenant: nil, detail: "run() may be called once")
        }
        hasRun = true
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.runTenants() }
            if let timeout = configuration.idleTimeout {
                tasks.addTask { await self.closeIdleTenants(every: timeout) }
            }
            // The tenants' task ends once they are drained or stopped; the idle sweeper only by cancellation.
            await tasks.next()
            tasks.cancelAll()
        }
        state = .stopped
        for continuation in subscribers.values { continuation.finish() }
        subscribers = [:]
    }

    /// Starts a graceful shutdown: the group accepts no more messages, every tenant delivers what it holds
    /// (for at most the grace period, then hands the rest back) and ``run()`` returns. Callable from any
    /// context, any number of times.
    public nonisolated func triggerGracefulShutdown() {
        eventSink.yield(.drain)
    }

    /// A stream of what becomes of every tenant's messages, each outcome naming its tenant, from now on
    /// until ``run()`` returns.
    ///
    /// Each call makes a new stream; every stream sees every outcome. Subscribe before recording to see
    /// them all. The buffering policy is the host's choice: `.unbounded` (the default) keeps everything
    /// until consumed; a bounded policy drops outcomes when the consumer falls behind (the messages are
    /// still delivered or failed; only the report is lost).
    public func outcomes(
        bufferingPolicy: AsyncStream<SegmentTenantOutcome>.Continuation.BufferingPolicy = .unbounded
    ) -> AsyncStream<SegmentTenantOutcome> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: SegmentTenantOutcome.self, bufferingPolicy: bufferingPolicy)
        guard state != .stopped else {
            continuation.finish()
            return stream
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = continuation
        return stream
    }

    // MARK: Running

    /// Consumes each tenant's outcomes as tenants open, until a drain has finished or the task is cancelled.
    private func runTenants() async {
        await withTaskGroup(of: Void.self) { tasks in
            for await event in events {
                switch event {
                case .opened(let pipeline):
                    tasks.addTask { await pipeline.run() }
                    tasks.addTask { await self.consume(pipeline) }
                case .drain:
                    guard state == .running else { continue }
                    state = .draining
                    for pipeline in openPipelines { pipeline.drain() }
                    eventSink.finish()
                }
            }
            // Cancelled: the tenants' runs stop at once (the task group cancels them); report what they
            // hand back once they have.
            if Task.isCancelled { state = .stopping }
            await tasks.waitForAll()
        }
        if state == .stopping { await reportHandedBack() }
    }

    /// Passes a tenant's outcomes on, named. (Its room under the byte bound was given back by its
    /// ``TenantStore`` when the messages settled, before the outcome was sent.)
    private func consume(_ pipeline: TenantPipeline) async {
        for await outcome in pipeline.outcomes {
            if case .retrying = outcome {} else { activity[pipeline.id]?.lastActive = clock.now() }
            // After a cancellation the group reports what its tenants hand back itself (reportHandedBack).
            if state == .stopping, case .handedBack = outcome { continue }
            emit(SegmentTenantOutcome(tenant: pipeline.id, outcome: outcome))
        }
    }

    private func emit(_ outcome: SegmentTenantOutcome) {
        for continuation in subscribers.values { continuation.yield(outcome) }
    }

    /// Returns once every message the open tenants accepted before the call is delivered or has failed
    /// for good (or the group stopped first), as ``SegmentPipeline/flush()`` does for each of them, all
    /// tenants at once: one tenant's retries delay only its own part.
    public func flush() async {
        let pipelines = openPipelines
        await withTaskGroup(of: Void.self) { tasks in
            for pipeline in pipelines {
                tasks.addTask { await pipeline.pipeline.flush() }
            }
        }
    }

    /// As ``flush()``, but each open tenant first waits until its pipeline has recovered what the store held
    /// for it (``SegmentPipeline/flushAfterRecovery()``), so that a durable store's messages from an earlier
    /// run are waited for too. Call it only while ``run()`` runs: a tenant's pipeline recovers in its run.
    package func flushAfterRecovery() async {
        let pipelines = openPipelines
        await withTaskGroup(of: Void.self) { tasks in
            for pipeline in pipelines {
                tasks.addTask { await pipeline.pipeline.flushAfterRecovery() }
            }
        }
    }

    private var openPipelines: [TenantPipeline] {
        tenants.values.compactMap { if case .open(let pipeline) = $0 { pipeline } else { nil } }
    }

    /// Reports what every open tenant handed back when it was stopped.
    private func reportHandedBack() async {
        for pipeline in openPipelines.sorted(by: { $0.id < $1.id }) {
            let messages = await pipeline.handedBack()
            guard !messages.isEmpty else { continue }
            emit(SegmentTenantOutcome(tenant: pipeline.id, outcome: .handedBack(messages)))
        }
    }

    private func closeIdleTenants(every interval: Duration) async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: interval) } catch { return }
            await closeIdleTenants()
        }
    }
}
