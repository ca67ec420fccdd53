#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Delivers many tenants' messages in one process: each tenant (a host-chosen id) has its own write key,
/// endpoint, bounds, queue, retry state and `Retry-After` pause, and all of them share one transport,
/// fairly, and one message store, partitioned by the tenant's id.
///
/// ```swift
/// let group = try SegmentPipelineGroup(transport: URLSessionTransport()) { tenant in
///     guard let key = try await keys.writeKey(of: tenant) else { return nil }   // unknown tenant
///     return .init(writeKey: WriteKey(key), pipeline: .init(endpoint: .eu))
/// }
/// try await withThrowingTaskGroup(of: Void.self) { tasks in
///     tasks.addTask { try await group.run() }
///     try await group.record(messages, tenant: "acme")
///     group.triggerGracefulShutdown()
/// }
/// ```
///
/// Guarantees (Docs/Tenants.md has the details):
/// - **Isolation.** Every tenant has its own ``SegmentPipeline``: one tenant's backlog, outage or 429 never
///   delays another's data, and one tenant's full queue makes only that tenant's `record` wait (or fail
///   fast, by its own ``SegmentPipeline/FullQueuePolicy``).
/// - **Fairness.** Requests reach the shared transport through a gate that grants slots by deficit round
///   robin over bytes (weights optional), at most one batch in flight per tenant by default (so its order
///   is kept) and at most ``Configuration/maximumRequestsInFlight`` in all. A paused or failing tenant
///   leaves the rotation until its pause or backoff ends.
/// - **Bounded memory.** ``Configuration/maximumBytes`` bounds what all tenants hold together; when it is
///   reached, waiting callers are let in round robin by tenant and no tenant holds more than its share while
///   others wait.
/// - **Tenants come and go.** A tenant is opened on first use from the host's resolver, and closed when
///   it has been idle for ``Configuration/idleTimeout``.
/// - **Names, not secrets.** Outcomes, counters and errors name the tenant's id, never its write key.
///
/// Lifecycle: the group sends nothing until ``run()`` runs (every tenant's pipeline runs inside it, in its
/// task group; before, `record` only fills the store), and ``run()`` returns after
/// ``triggerGracefulShutdown()`` has drained every tenant, or at once when its task is cancelled (then
/// what was not delivered is handed back as ``SegmentOutcome/handedBack(_:)`` outcomes).
public actor SegmentPipelineGroup {
    /// Gives a tenant's settings for its id; `nil` for an id the host does not know. Called once per
    /// opening of a tenant (again after the tenant was closed as idle), never concurrently for one id.
    public typealias Resolver = @Sendable (_ tenant: String) async throws -> TenantConfiguration?

    /// The group's settings.
    public nonisolated let configuration: Configuration
    let resolver: Resolver
    let transport: any SegmentTransport
    /// The one store every tenant's messages wait in, each under its tenant's id.
    let store: any SegmentMessageStore
    let pipelineClock: any Clock<Duration>
    let wallClock: @Sendable () -> Date
    let clock: PipelineClock
    let jitter: @Sendable (Duration) -> Duration
    let gate: SendGate
    let bytes: ByteGate

    var tenants: [String: Entry] = [:]
    /// The tenants open now (``Entry/open``), kept so that ``statistics`` costs nothing per tenant.
    var openCount = 0
    var activity: [String: Activity] = [:]
    var state = State.running
    var hasRun = false
    var subscribers: [Int: AsyncStream<SegmentTenantOutcome>.Continuation] = [:]
    var nextSubscriberID = 0
    nonisolated let events: AsyncStream<Event>
    nonisolated let eventSink: AsyncStream<Event>.Continuation

    enum Entry {
        case opening([CheckedContinuation<Result<TenantPipeline, SegmentTenantError>, Never>])
        case open(TenantPipeline)
    }

    struct Activity {
        /// Calls to `record` for the tenant that have not returned.
        var recording = 0
        /// When the tenant last recorded or heard of an outcome.
        var lastActive: Duration
    }

    enum State {
        case running, draining, stopping, stopped
    }

    enum Event: Sendable {
        case opened(TenantPipeline)
        case drain
    }

    /// Creates a group. Nothing is sent until messages are recorded and ``run()`` runs.
    ///
    /// - Parameters:
    ///   - transport: The one transport every tenant's requests go through.
    ///   - configuration: What the tenants share: requests in flight, the byte bound, idle timeout.
    ///   - store: The one store all tenants share, each tenant's messages under its id; by default an
    ///     ``InMemoryMessageStore``. Each tenant's own queue bounds (``TenantConfiguration/pipeline``) apply on
    ///     top of the store's.
    ///   - clock: The monotonic clock of every tenant (pauses, backoff, linger, idle tenants); inject a
    ///     virtual one in tests.
    ///   - wallClock: The wall-clock now, for `sentAt` and HTTP-date `Retry-After` only.
    ///   - jitter: Passed to every tenant's pipeline (see ``SegmentPipeline/equalJitter(_:)``).
    ///   - resolver: A tenant's settings for its id.
    /// - Throws: ``SegmentTenantError`` with code ``SegmentTenantError/Code/invalidConfiguration`` when a
    ///   bound is out of range.
    public init(
        transport: some SegmentTransport,
        configuration: Configuration = Configuration(),
        store: (any SegmentMessageStore)? = nil,
        clock: some Clock<Duration> = ContinuousClock(),
        wallClock: @escaping @Sendable () -> Date = { Date() },
        jitter: @escaping @Sendable (Duration) -> Duration = { SegmentPipeline.equalJitter($0) },
        resolver: @escaping Resolver
    ) throws(SegmentTenantError) {
        try configuration.validate()
        self.configuration = configuration
        self.resolver = resolver
        self.transport = transport
        // Every tenant's own bounds apply in its TenantStore; the shared in-memory store adds none.
        self.store = store ?? InMemoryMessageStore(limits: .init(maximumMessages: .max, maximumBytes: .max))
        self.pipelineClock = clock
        self.wallClock = wallClock
        self.clock = PipelineClock(clock)
        self.jitter = jitter
        self.gate = SendGate(
            configuration: FairScheduler.Configuration(
                quantum: configuration.quantum, maximumInFlight: configuration.maximumRequestsInFlight),
            clock: self.clock, wallClock: wallClock)
        self.bytes = ByteGate(limit: configuration.maximumBytes)
        (events, eventSink) = AsyncStream.makeStream(of: Event.self)
    }

    // MARK: Recording

    /// Accepts one tenant's messages that travel together (an `identify` and its `group`), as
    /// ``SegmentPipeline/record(_:)`` does; opens the tenant first when it is not open.
    ///
    /// Waits while the group's byte bound or the tenant's own queue is full (or throws, when the tenant's
    /// queue policy is to fail fast); another tenant's full queue never makes it wait.
    ///
    /// - Throws: ``SegmentTenantError`` naming the tenant: ``SegmentTenantError/Code/unknownTenant``,
    ///   ``SegmentTenantError/Code/resolverFailed``, ``SegmentTenantError/Code/invalidConfiguration``,
    ///   ``SegmentTenantError/Code/groupFull``, ``SegmentTenantError/Code/shutDown``,
    ///   ``SegmentTenantError/Code/cancelled``, or ``SegmentTenantError/Code/delivery`` with the pipeline's
    ///   error. Nothing is accepted when it throws.
    public func record(_ messages: [SegmentMessage], tenant: String) async throws(SegmentTenantError) {
        guard !messages.isEmpty else { return }
        let pipeline = try await open(tenant)
        activity[tenant]?.recording += 1
        defer { finishRecording(tenant) }
        try await record(messages, bytes: Self.bytes(of: messages), in: pipeline)
    }

    /// Accepts many units of one tenant in order, as ``record(_:tenant:)`` does each of them.
    ///
    /// - Throws: As ``record(_:tenant:)``, for the first unit that cannot be accepted; the units before it
    ///   were accepted, the ones after it were not.
    public func record(contentsOf units: [[SegmentMessage]], tenant: String) async throws(SegmentTenantError) {
        guard units.contains(where: { !$0.isEmpty }) else { return }
        let pipeline = try await open(tenant)
        activity[tenant]?.recording += 1
        defer { finishRecording(tenant) }
        guard pipeline.whenFull == .wait else {
            // Fail fast: unit by unit, so that exactly the units the pipeline refused give their room back.
            for unit in units where !unit.isEmpty {
                try await record(unit, bytes: Self.bytes(of: unit), in: pipeline)
            }
            return
        }
        // Units go to the pipeline in runs, one call per run, so that its batches fill as they would from
        // one caller: a run grows while its units fit under the byte bound without waiting.
        var run: [[SegmentMessage]] = []
        var runBytes = 0
        for unit in units where !unit.isEmpty {
            let count = Self.bytes(of: unit)
            guard pipeline.fitsOneBatch(unit, bytes: count) else {
                // Let the pipeline refuse it, with its own error, after the run before it.
                try await record(run, bytes: runBytes, in: pipeline)
                (run, runBytes) = ([], 0)
                try await record(unit, bytes: count, in: pipeline)
                continue
            }
            if bytes.tryReserve(count, tenant: tenant) {
                run.append(unit)
                runBytes += count
                continue
            }
            try await record(run, bytes: runBytes, in: pipeline)
            (run, runBytes) = ([], 0)
            try await reserve(count, tenant: tenant)
            run.append(unit)
            runBytes += count
        }
        try await record(run, bytes: runBytes, in: pipeline)
    }

    /// Records a run of units whose bytes are reserved already.
    ///
    /// When the pipeline stops part-way (it shuts down, or the caller is cancelled while it waits for
    /// room), the units it took will give their bytes back as they settle and the others never will, and
    /// which is which is not known here: the whole run's bytes are given back now. The tenant's count can
    /// then fall short of what it holds by at most one run until those units settle (the count never goes
    /// below zero), so the bound is loosened by one run at worst and never leaks.
    private func record(
        _ run: [[SegmentMessage]],
        bytes count: Int,
        in pipeline: TenantPipeline
    ) async throws(SegmentTenantError) {
        guard !run.isEmpty else { return }
        let tenant = pipeline.id
        guard state == .running else {
            bytes.release(count, tenant: tenant)
            throw shutDownError(tenant)
        }
        do {
            try await pipeline.pipeline.record(contentsOf: run)
        } catch {
            bytes.release(count, tenant: tenant)
            throw tenantError(error, tenant: tenant)
        }
    }

    private func reserve(_ count: Int, tenant: String) async throws(SegmentTenantError) {
        do {
            try await bytes.reserve(count, tenant: tenant)
        } catch {
            throw SegmentTenantError(
                code: .cancelled, tenant: tenant, detail: "the task was cancelled while it waited for room in the group"
            )
        }
    }

    private func tenantError(_ error: any Error, tenant: String) -> SegmentTenantError {
        guard let error = error as? SegmentDeliveryError else {
            return SegmentTenantError(code: .delivery, tenant: tenant, underlying: error)
        }
        if error.code == .shutDown { return shutDownError(tenant) }
        return SegmentTenantError(
            code: error.code == .cancelled ? .cancelled : .delivery, tenant: tenant, deliveryError: error)
    }

    /// Builds a response's calls with the tenant's own builder (and its survey-key cache) on a collected
    /// profile, and records them as one unit.
    ///
    /// - Returns: The updated profile, for the host to persist once the calls are accepted.
    /// - Throws: ``RefinerSegmentError`` when the response is invalid, ``SegmentTenantError`` when the
    ///   calls cannot be accepted.
    public func record(
        _ response: SurveyResponse,
        profile: CollectedProfile,
        tenant: String
    ) async throws -> CollectedProfile {
        let pipeline = try await open(tenant)
        let (messages, updated) = try pipeline.builder.process(response, profile: profile)
        try await record(messages, tenant: tenant)
        return updated
    }

    private func record(
        _ unit: [SegmentMessage],
        bytes count: Int,
        in pipeline: TenantPipeline
    ) async throws(SegmentTenantError) {
        let tenant = pipeline.id
        guard state == .running else { throw shutDownError(tenant) }
        if !bytes.tryReserve(count, tenant: tenant) {
            guard pipeline.whenFull == .wait else {
                throw SegmentTenantError(
                    code: .groupFull, tenant: tenant,
                    detail: "the group holds \(bytes.load.bytes) of at most \(configuration.maximumBytes) bytes")
            }
            try await reserve(count, tenant: tenant)
        }
        do {
            try await pipeline.pipeline.record(unit)
        } catch {
            bytes.release(count, tenant: tenant)
            throw tenantError(error, tenant: tenant)
        }
    }

    private func finishRecording(_ tenant: String) {
        activity[tenant]?.recording -= 1
        activity[tenant]?.lastActive = clock.now()
    }

    private func shutDownError(_ tenant: String) -> SegmentTenantError {
        SegmentTenantError(code: .shutDown, tenant: tenant, detail: "the group accepts no more messages")
    }

    static func bytes(of messages: [SegmentMessage]) -> Int {
        var total = 0
        for message in messages { total += message.byteCount }
        return total
    }

    // MARK: Tenants

    /// The tenant's open pipeline, opening it from the resolver when needed.
    private func open(_ tenant: String) async throws(SegmentTenantError) -> TenantPipeline {
        switch tenants[tenant] {
        case .open(let pipeline)?:
            return pipeline
        case .opening?:
            let result = await withCheckedContinuation { continuation in
                if case .opening(var waiters)? = tenants[tenant] {
                    waiters.append(continuation)
                    tenants[tenant] = .opening(waiters)
                } else if case .open(let pipeline)? = tenants[tenant] {
                    continuation.resume(returning: .success(pipeline))
                } else {
                    continuation.resume(returning: .failure(shutDownError(tenant)))
                }
            }
            return try result.get()
        case nil:
            guard state == .running else { throw shutDownError(tenant) }
            tenants[tenant] = .opening([])
            let result = await makePipeline(tenant)
            guard case .opening(let waiters)? = tenants[tenant] else { preconditionFailure("tenant state lost") }
            switch result {
            case .success(let pipeline) where state == .running:
                tenants[tenant] = .open(pipeline)
                openCount += 1
                activity[tenant] = Activity(lastActive: clock.now())
                eventSink.yield(.opened(pipeline))
            case .success(let pipeline):
                tenants[tenant] = nil
                pipeline.drain()
                return try Result<TenantPipeline, SegmentTenantError>.failure(shutDownError(tenant)).get()
            case .failure:
                tenants[tenant] = nil
            }
            for waiter in waiters { waiter.resume(returning: result) }
            return try result.get()
        }
    }

    private func makePipeline(_ tenant: String) async -> Result<TenantPipeline, SegmentTenantError> {
        let settings: TenantConfiguration
        do {
            guard let resolved = try await resolver(tenant) else {
                return .failure(
                    SegmentTenantError(
                        code: .unknownTenant, tenant: tenant, detail: "the resolver has no settings for it"))
            }
            settings = resolved
        } catch {
            return .failure(SegmentTenantError(code: .resolverFailed, tenant: tenant, underlying: error))
        }
        do throws(SegmentTenantError) {
            return .success(
                try await TenantPipeline(
                    id: tenant, configuration: settings, transport: transport, gate: gate,
                    store: TenantStore(tenant: tenant, base: store, limits: settings.pipeline.queue, bytes: bytes),
                    gracePeriod: configuration.gracePeriod, clock: pipelineClock, wallClock: wallClock, jitter: jitter))
        } catch {
            return .failure(error)
        }
    }

    /// Opens a tenant from the resolver now, without recording anything, so that it delivers what the
    /// shared store holds for it from an earlier run (a durable store), as a tenant opened by ``record(_:tenant:)``
    /// does. Nothing happens when it is open already.
    ///
    /// - Throws: ``SegmentTenantError`` naming the tenant, as ``record(_:tenant:)`` does when it cannot open it.
    public func open(tenant: String) async throws(SegmentTenantError) {
        _ = try await open(tenant)
    }

    /// The ids of the tenants open now, sorted.
    public var openTenants: [String] {
        tenants.compactMap { if case .open = $0.value { $0.key } else { nil } }.sorted()
    }

    /// What a tenant has done and holds, or `nil` when it is not open.
    public func status(of tenant: String) async -> TenantStatus? {
        guard case .open(let pipeline)? = tenants[tenant] else { return nil }
        return TenantStatus(
            tenant: tenant, counters: await pipeline.pipeline.counters, bytes: bytes.bytes(of: tenant),
            bytesSent: gate.grantedBytes(of: tenant), requestsWaiting: gate.waitingCount(of: tenant),
            isPaused: gate.pausedUntil(tenant) != nil)
    }

    /// What the group holds and sends now.
    public var statistics: Statistics {
        let held = bytes.load
        let load = gate.load
        return Statistics(
            tenants: openCount, bytes: held.bytes, unitsWaitingForRoom: held.waiting,
            requestsInFlight: load.inFlight, requestsWaiting: load.waiting)
    }

    /// Closes the tenants that have held nothing and recorded nothing for the idle timeout.
    func closeIdleTenants() async {
        guard let timeout = configuration.idleTimeout, state == .running else { return }
        let now = clock.now()
        var closing: [TenantPipeline] = []
        for (tenant, entry) in tenants {
            guard case .open(let pipeline) = entry, let active = activity[tenant], active.recording == 0,
                now - active.lastActive >= timeout, bytes.bytes(of: tenant) == 0
            else { continue }
            tenants[tenant] = nil
            openCount -= 1
            activity[tenant] = nil
            gate.remove(tenant)
            closing.append(pipeline)
        }
        for pipeline in closing { pipeline.drain() }
    }
}
