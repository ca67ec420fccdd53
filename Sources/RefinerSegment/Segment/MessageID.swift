/// Deterministic Segment `messageId`s: the same response and call always give the same id, so a retry, a
/// restart or a backfill run twice is deduplicated by Segment instead of counted twice.
enum MessageID {
    /// Segment's limit on a `messageId`.
    static let maximumLength = 100

    /// `refiner-<responseID>-<kind>`, or `refiner-sha256-<hex digest of the response id>-<kind>` when that
    /// would be longer than 100 characters.
    static func make(responseID: String, kind: SegmentMessage.Kind) -> String {
        let length = 9 + responseID.utf8.count + kind.rawValue.utf8.count
        if length <= maximumLength {
            // One allocation: this runs for every message built.
            var id = String()
            id.reserveCapacity(length)
            id.append("refiner-")
            id.append(responseID)
            id.append("-")
            id.append(kind.rawValue)
            return id
        }
        return "refiner-sha256-" + SHA256.hexDigest(responseID.utf8) + "-" + String(kind.rawValue.prefix(14))
    }
}
