/// What became of a batch of one tenant's messages: the tenant's id beside the pipeline's outcome.
///
/// Never the write key: hosts route, log and count by the id they chose.
public struct SegmentTenantOutcome: Sendable {
    /// The tenant the messages belong to.
    public var tenant: String
    /// What became of them.
    public var outcome: SegmentOutcome

    /// Creates an outcome.
    public init(tenant: String, outcome: SegmentOutcome) {
        self.tenant = tenant
        self.outcome = outcome
    }
}
