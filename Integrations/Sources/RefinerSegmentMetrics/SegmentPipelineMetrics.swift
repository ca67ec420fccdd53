import Metrics
import RefinerSegment

/// Reports what a ``SegmentPipeline`` does as swift-metrics counters, gauges and a timer.
///
/// | Metric | Type | Dimensions | What |
/// | --- | --- | --- | --- |
/// | `refiner_segment_messages` | counter | `outcome`: `delivered`, `retrying`, `failed`, `handed_back` | messages, by what became of them (`retrying` counts the messages of each failed attempt that is retried) |
/// | `refiner_segment_queue_depth` | gauge | | messages accepted and not yet settled (queued or in flight) |
/// | `refiner_segment_store_bytes` | gauge | | bytes of message JSON the pipeline's store holds |
/// | `refiner_segment_batch_duration` | timer | `status`: `2xx`, `3xx`, `4xx`, `5xx`, `error` | one request of a batch, from sending to the last byte of the answer |
///
/// Every metric also gets a `tenant` dimension when ``tenant`` is set (opt-in: a dimension per tenant
/// multiplies the series a backend stores). No dimension ever holds the write key or message contents.
///
/// ```swift
/// let metrics = SegmentPipelineMetrics(factory: MetricsSystem.factory)
/// let pipeline = try SegmentPipeline(writeKey: key, transport: metrics.timing(AsyncHTTPClientTransport()))
/// let outcomes = await pipeline.outcomes()     // subscribe before the first record
/// async let measured: Void = metrics.record(outcomes, of: pipeline)
/// ```
///
/// The factory is passed in (by default the one the host bootstrapped): the adapter never bootstraps the
/// metrics system.
public struct SegmentPipelineMetrics: Sendable {
    /// The tenant dimension's value, or `nil` for none.
    public let tenant: String?
    private let delivered: Counter
    private let retrying: Counter
    private let failed: Counter
    private let handedBack: Counter
    private let queueDepth: Gauge
    private let storeBytes: Gauge
    private let factory: any MetricsFactory

    /// The counter of messages by outcome.
    public static let messagesLabel = "refiner_segment_messages"
    /// The gauge of messages accepted and not yet settled.
    public static let queueDepthLabel = "refiner_segment_queue_depth"
    /// The gauge of bytes in the pipeline's store.
    public static let storeBytesLabel = "refiner_segment_store_bytes"
    /// The timer of batch requests.
    public static let batchDurationLabel = "refiner_segment_batch_duration"

    /// Creates the pipeline's metrics on a factory.
    ///
    /// - Parameters:
    ///   - factory: Where metrics go; by default the factory the host bootstrapped.
    ///   - tenant: Adds a `tenant` dimension with this value to every metric; none by default.
    public init(factory: any MetricsFactory = MetricsSystem.factory, tenant: String? = nil) {
        self.factory = factory
        self.tenant = tenant
        let tenantDimensions = tenant.map { [("tenant", $0)] } ?? []
        func messages(_ outcome: String) -> Counter {
            Counter(
                label: Self.messagesLabel, dimensions: [("outcome", outcome)] + tenantDimensions, factory: factory)
        }
        delivered = messages("delivered")
        retrying = messages("retrying")
        failed = messages("failed")
        handedBack = messages("handed_back")
        queueDepth = Gauge(label: Self.queueDepthLabel, dimensions: tenantDimensions, factory: factory)
        storeBytes = Gauge(label: Self.storeBytesLabel, dimensions: tenantDimensions, factory: factory)
    }

    /// Counts every outcome and updates the gauges after each, until the stream ends (when the pipeline has
    /// shut down); the gauges are also sampled every `interval` in between, so a backlog shows while
    /// nothing is delivered.
    ///
    /// Subscribe with `pipeline.outcomes()` before recording into the pipeline, so that no outcome is
    /// missed. Returns when the stream ends or the task is cancelled.
    ///
    /// - Parameters:
    ///   - outcomes: The pipeline's outcome stream.
    ///   - pipeline: The pipeline the gauges read.
    ///   - interval: How often the gauges are sampled between outcomes.
    ///   - clock: The clock the sampling sleeps on.
    public func record<C: Clock>(
        _ outcomes: AsyncStream<SegmentOutcome>,
        of pipeline: SegmentPipeline,
        sampleEvery interval: Duration = .seconds(5),
        clock: C = ContinuousClock()
    ) async where C.Duration == Duration {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    do { try await clock.sleep(for: interval) } catch { return }
                    await sample(pipeline)
                }
            }
            for await outcome in outcomes {
                record(outcome)
                await sample(pipeline)
            }
            group.cancelAll()
        }
        await sample(pipeline)
    }

    /// Counts the messages of one outcome.
    public func record(_ outcome: SegmentOutcome) {
        switch outcome {
        case .delivered(let messages, _): delivered.increment(by: messages.count)
        case .retrying(let messages, _, _, _): retrying.increment(by: messages.count)
        case .failed(let messages, _): failed.increment(by: messages.count)
        case .handedBack(let messages): handedBack.increment(by: messages.count)
        }
    }

    /// Sets the gauges from the pipeline's counters now.
    public func sample(_ pipeline: SegmentPipeline) async {
        update(from: await pipeline.counters)
    }

    /// Sets the gauges from a pipeline's counters.
    public func update(from counters: SegmentPipeline.Counters) {
        queueDepth.record(counters.queuedMessages + counters.inFlightMessages)
        storeBytes.record(counters.queuedBytes)
    }

    /// Wraps a transport so that each request is timed as `refiner_segment_batch_duration`.
    ///
    /// - Parameters:
    ///   - transport: The transport that sends the requests.
    ///   - clock: The clock requests are timed on.
    public func timing<C: Clock>(
        _ transport: some SegmentTransport,
        clock: C = ContinuousClock()
    ) -> some SegmentTransport where C.Duration == Duration {
        TimedTransport(transport: transport, clock: clock, tenant: tenant, factory: factory)
    }
}

/// A transport that times each request into `refiner_segment_batch_duration`, by status class.
private struct TimedTransport<Transport: SegmentTransport, C: Clock>: SegmentTransport where C.Duration == Duration {
    var transport: Transport
    var clock: C
    var timers: [String: Timer]

    init(transport: Transport, clock: C, tenant: String?, factory: any MetricsFactory) {
        self.transport = transport
        self.clock = clock
        let tenantDimensions = tenant.map { [("tenant", $0)] } ?? []
        var timers: [String: Timer] = [:]
        for status in ["2xx", "3xx", "4xx", "5xx", "error"] {
            timers[status] = Timer(
                label: SegmentPipelineMetrics.batchDurationLabel,
                dimensions: [("status", status)] + tenantDimensions,
                factory: factory
            )
        }
        self.timers = timers
    }

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let start = clock.now
        let response: SegmentResponse
        do {
            response = try await transport.send(request)
        } catch {
            timers["error"]?.record(duration: start.duration(to: clock.now))
            throw error
        }
        let statusClass = "\(response.statusCode / 100)xx"
        (timers[statusClass] ?? timers["error"])?.record(duration: start.duration(to: clock.now))
        return response
    }
}
