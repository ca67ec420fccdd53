/// Why a ``SegmentPipelineGroup`` did not accept messages or a tenant: it names the tenant by its id, never
/// by its write key.
///
/// The ``code`` says what kind of problem it is (new codes may come in minor releases; keep a default when
/// switching); a refusal by the tenant's own pipeline carries its ``SegmentDeliveryError``, and a failure
/// of the host's resolver carries the resolver's error.
public struct SegmentTenantError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem an error reports. Compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unknownTenant = "unknown tenant"
            case resolverFailed = "tenant settings unavailable"
            case invalidConfiguration = "invalid configuration"
            case delivery = "refused by the tenant's pipeline"
            case groupFull = "group full"
            case shutDown = "group shut down"
            case cancelled = "cancelled"
            case alreadyRunning = "already running"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The resolver has no settings for the tenant id.
        public static let unknownTenant = Code(.unknownTenant)
        /// The resolver threw; ``SegmentTenantError/underlying`` holds its error.
        public static let resolverFailed = Code(.resolverFailed)
        /// The group's or a tenant's settings cannot be used (a bound, a weight, an endpoint).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The tenant's pipeline refused the messages; ``SegmentTenantError/deliveryError`` says why (its
        /// queue is full and it fails fast, a message is too large, ...).
        public static let delivery = Code(.delivery)
        /// The group's byte bound is reached and the tenant's queue policy is to fail fast.
        public static let groupFull = Code(.groupFull)
        /// The group is shutting down or shut down and accepts nothing more.
        public static let shutDown = Code(.shutDown)
        /// The recording task was cancelled while it waited for room; nothing was accepted.
        public static let cancelled = Code(.cancelled)
        /// ``SegmentPipelineGroup/run()`` was called a second time.
        public static let alreadyRunning = Code(.alreadyRunning)

        /// The code in words.
        public var description: String { base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The tenant's id, when the error is about one tenant.
    public var tenant: String?
    /// The tenant pipeline's error, for ``Code/delivery`` and for a pipeline the settings could not make.
    public var deliveryError: SegmentDeliveryError?
    /// The resolver's error, for ``Code/resolverFailed``.
    public var underlying: (any Error)?
    /// More about what was wrong, in words.
    public var detail: String

    init(
        code: Code,
        tenant: String?,
        deliveryError: SegmentDeliveryError? = nil,
        underlying: (any Error)? = nil,
        detail: String = ""
    ) {
        self.code = code
        self.tenant = tenant
        self.deliveryError = deliveryError
        self.underlying = underlying
        self.detail = detail
    }

    /// `tenant 'acme': refused by the tenant's pipeline: queue full: ...`, on one line.
    public var description: String {
        var text = tenant.map { "tenant '\($0)': " } ?? ""
        text += code.description
        if !detail.isEmpty { text += ": " + detail }
        if let deliveryError { text += ": " + deliveryError.description }
        if let underlying { text += " (" + String(describing: underlying) + ")" }
        return LogText.singleLine(text)
    }
}
