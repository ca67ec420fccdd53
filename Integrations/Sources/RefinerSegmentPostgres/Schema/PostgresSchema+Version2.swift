extension PostgresSchema {
    /// Version 2: the tenant's sender lease is the lease of what its holder claimed (`claimed_through`).
    ///
    /// A claim of ``PostgresOutbox/claimBatch(of:maximumMessages:maximumBytes:lease:)`` no longer writes the
    /// message rows: it moves the holder's mark on the tenant row, and the rows up to it are the holder's while its
    /// sender lease lasts. Kept word for word in `Docs/RunningSeveralInstances.md`; change both together.
    static let version2 = Migration(
        version: 2,
        summary: "tenant's claimed_through: a claim marks the tenant row, not the message rows",
        statements: [
            // The highest sequence the tenant's current sender claimed; NULL when the tenant is free or its holder
            // has claimed nothing yet. Reset whenever the sender lease changes hands.
            "ALTER TABLE refiner_segment_tenants ADD COLUMN IF NOT EXISTS claimed_through bigint"
        ]
    )
}
