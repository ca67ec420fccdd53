extension SegmentPipelineGroup {
    /// The group's settings: what the tenants share.
    public struct Configuration: Sendable, Hashable {
        /// The most requests in flight, all tenants together: 64. The fair scheduler shares them.
        public var maximumRequestsInFlight: Int
        /// The bytes of request body a tenant of weight 1 may send per scheduling round: 500,000 (one full
        /// batch). Smaller values share more finely at the cost of more rounds.
        public var quantum: Int
        /// The most bytes of message JSON the group holds, all tenants together (accepted and not yet
        /// delivered, failed or handed back): 256 MiB. Each tenant's own queue has its own bound too. At
        /// least one full batch (500,000 bytes).
        public var maximumBytes: Int
        /// How long a tenant with nothing to send stays open: 5 minutes; `nil` keeps tenants open until
        /// shutdown. A closed tenant is opened again, through the resolver, by its next `record`.
        public var idleTimeout: Duration?
        /// How long a graceful shutdown keeps delivering before the rest is handed back: 10 s.
        public var gracePeriod: Duration

        /// Creates a configuration.
        public init(
            maximumRequestsInFlight: Int = 64,
            quantum: Int = 500_000,
            maximumBytes: Int = 256 << 20,
            idleTimeout: Duration? = .seconds(300),
            gracePeriod: Duration = .seconds(10)
        ) {
            self.maximumRequestsInFlight = maximumRequestsInFlight
            self.quantum = quantum
            self.maximumBytes = maximumBytes
            self.idleTimeout = idleTimeout
            self.gracePeriod = gracePeriod
        }

        func validate() throws(SegmentTenantError) {
            func invalid(_ detail: String) -> SegmentTenantError {
                SegmentTenantError(code: .invalidConfiguration, tenant: nil, detail: detail)
            }
            guard maximumRequestsInFlight >= 1 else { throw invalid("at least one request must be in flight") }
            guard quantum >= 1 else { throw invalid("the quantum must be at least one byte") }
            guard maximumBytes >= SegmentBatch.maximumBytes else {
                throw invalid("the group must hold at least one full batch (\(SegmentBatch.maximumBytes) bytes)")
            }
            if let idleTimeout, idleTimeout <= .zero { throw invalid("the idle timeout must be positive") }
            guard gracePeriod >= .zero else { throw invalid("the grace period cannot be negative") }
        }
    }

    /// One tenant's settings, as the host's resolver gives them: its write key, its pipeline's endpoint,
    /// bounds and retry policy, its share of the transport, and how its survey responses become calls.
    ///
    /// Its description and reflection never show the write key (``WriteKey`` redacts itself).
    public struct TenantConfiguration: Sendable, Hashable {
        /// The tenant's Segment write key.
        public var writeKey: WriteKey
        /// The tenant's pipeline: endpoint, queue bounds (and what `record` does when they are reached),
        /// batch limits, retry policy, batches in flight (1 by default, which keeps order).
        public var pipeline: SegmentPipeline.Configuration
        /// The tenant's share of the transport relative to others: 1 by default; a tenant of weight 2 gets
        /// twice the bytes of a tenant of weight 1 when both have more to send than the transport carries.
        public var weight: Int
        /// How the tenant's survey responses become calls (trait-key prefix and length, the optional
        /// track call). Each tenant has its own builder, so its own bounded cache of survey keys.
        public var builder: SegmentCallBuilder.Configuration

        /// Creates a tenant's settings.
        public init(
            writeKey: WriteKey,
            pipeline: SegmentPipeline.Configuration = SegmentPipeline.Configuration(),
            weight: Int = 1,
            builder: SegmentCallBuilder.Configuration = SegmentCallBuilder.Configuration()
        ) {
            self.writeKey = writeKey
            self.pipeline = pipeline
            self.weight = weight
            self.builder = builder
        }
    }

    /// What the group holds and sends now, all tenants together.
    public struct Statistics: Sendable, Hashable {
        /// Tenants open now.
        public var tenants: Int
        /// Bytes of message JSON held (accepted and not yet settled).
        public var bytes: Int
        /// Units waiting for room under ``Configuration/maximumBytes``.
        public var unitsWaitingForRoom: Int
        /// Requests in flight.
        public var requestsInFlight: Int
        /// Requests waiting for a slot.
        public var requestsWaiting: Int
    }

    /// What one tenant has done and holds now.
    public struct TenantStatus: Sendable, Hashable {
        /// The tenant's id.
        public var tenant: String
        /// Its pipeline's counters.
        public var counters: SegmentPipeline.Counters
        /// Bytes of message JSON it holds under the group's bound.
        public var bytes: Int
        /// Bytes of request body the scheduler has let it send.
        public var bytesSent: Int
        /// Its requests waiting for a slot under ``Configuration/maximumRequestsInFlight`` now (a request
        /// granted a slot, on its way to the transport or on it, is not waiting).
        public var requestsWaiting: Int
        /// Whether a `Retry-After` pause is in force for it.
        public var isPaused: Bool
    }
}
