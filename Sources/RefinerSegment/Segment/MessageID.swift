/// Deterministic Segment `messageId`s: the same response and call always give the same id, so a retry, a
/// restart or a backfill run twice is deduplicated by Segment instead of counted twice.
enum MessageID {
    /// Segment's limit on a `messageId`.
    static let maximumLength = 100

    /// `refiner-<responseID>-<kind>`, or `refiner-sha256-<hex digest of the response id>-<kind>` when that
    /// would be longer than 100 characters.
    /// The id of part `part` of a call split in several (see `SegmentCallBuilder.split`): part 1 is the
    /// call's usual id, part `n` adds `-n` to the type (`refiner-resp_1-group-2`).
    static func make(responseID: String, kind: SegmentMessage.Kind, part: Int) -> String {
        guard part > 1 else { return make(responseID: responseID, kind: kind) }
        return make(responseID: responseID, kind: SegmentMessage.Kind(rawValue: kind.rawValue + "-" + String(part)))
    }

    /// The builder's own kinds' names, as static text (they need no escaping).
    @inline(__always)
    static func staticName(of kind: SegmentMessage.Kind) -> StaticString? {
        // By length first: comparing two different short strings is not the cheap case of `==`.
        switch kind.rawValue.utf8.count {
        case 8: return kind == .identify ? "identify" : nil
        case 5: return kind == .group ? "group" : kind == .track ? "track" : nil
        default: return nil
        }
    }

    /// The length of `refiner-<responseID>-<name>` when it is the id (at most 100 characters), before any
    /// escaping; nil when the id is the digest form.
    @inline(__always)
    static func plainLength(responseID: String, name: StaticString) -> Int? {
        let length = 9 + responseID.utf8.count + name.utf8CodeUnitCount
        return length <= maximumLength ? length : nil
    }

    static func make(responseID: String, kind: SegmentMessage.Kind) -> String {
        let length = 9 + responseID.utf8.count + kind.rawValue.utf8.count
        if length <= maximumLength {
            // Written in place, one allocation: this runs for every message built. Native strings lend their
            // bytes without a copy (no `var` copy for `withUTF8`, which retains and releases).
            let written = responseID.utf8.withContiguousStorageIfAvailable { id in
                kind.rawValue.utf8.withContiguousStorageIfAvailable { name in
                    String(unsafeUninitializedCapacity: length) { output in
                        let prefix: StaticString = "refiner-"
                        let base = output.baseAddress!
                        base.initialize(from: prefix.utf8Start, count: 8)
                        if let idBytes = id.baseAddress { (base + 8).initialize(from: idBytes, count: id.count) }
                        base[8 + id.count] = UInt8(ascii: "-")
                        if let nameBytes = name.baseAddress {
                            (base + 9 + id.count).initialize(from: nameBytes, count: name.count)
                        }
                        return length
                    }
                }
            }
            if let written, let written { return written }
            return "refiner-" + responseID + "-" + kind.rawValue
        }
        return "refiner-sha256-" + SHA256.hexDigest(responseID.utf8) + "-" + String(kind.rawValue.prefix(14))
    }
}
