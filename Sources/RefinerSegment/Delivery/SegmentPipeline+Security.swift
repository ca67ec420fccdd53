extension SegmentPipeline {
    /// The checks that keep the write key and the data where they belong, run when a pipeline is made: the
    /// endpoint (https, or http on loopback unless allowed; no credentials, query or fragment), the write
    /// key (printable ASCII without spaces, a bounded length) and the library information that goes into
    /// the `User-Agent` (header tokens only). Each is a programming or configuration error, reported at
    /// once as ``SegmentDeliveryError/Code/invalidConfiguration`` and never retried.
    static func validateSecurity(_ configuration: Configuration, writeKey: WriteKey) throws(SegmentDeliveryError) {
        try configuration.endpoint.validate(allowingInsecureHTTP: configuration.allowsInsecureHTTP)
        try writeKey.validate()
        try configuration.library.validate()
    }
}
