/// What a failure reason says of a server's answer: its length, and a short excerpt only when the excerpt
/// is the server's own words rather than a copy of what was sent.
///
/// A proxy or collector that echoes the request fills its answer with user ids, emails and free text,
/// which would travel from a failure reason into logs. So the excerpt is the start of the answer (at most
/// ``maximumBytes``), its secrets redacted in every encoded form, escaped onto one line, and it is left out
/// when it repeats the request: when it shares a run of ``copiedRunBytes`` bytes with the request body, or
/// holds one of the request's JSON string values of ``copiedValueBytes`` bytes or more.
package enum ResponseExcerpt {
    /// The longest excerpt, in bytes of the answer: 160.
    package static let maximumBytes = 160
    /// A run this long (12 bytes) found in the request body makes the excerpt a copy.
    package static let copiedRunBytes = 12
    /// A JSON string value of the request at least this long (4 bytes), found in the excerpt, makes it a copy.
    package static let copiedValueBytes = 4

    /// The answer for a failure reason, or `nil` when it is empty.
    ///
    /// - The whole answer when it is short and not a copy: `bad key <redacted>`.
    /// - The start and the length when it is longer: `{"error":"... (2048 bytes)`.
    /// - Only the length when the start repeats the request: `(2048 bytes, not shown: it repeats the
    ///   request)`.
    ///
    /// - Parameters:
    ///   - response: The answer's body.
    ///   - sent: The body of the request it answers.
    ///   - secrets: Texts that never show (the write key in its encoded forms), each replaced by
    ///     `<redacted>`. A secret that crosses the cut, or that the answer's end cuts short, moves the cut
    ///     before it, so no part of it shows.
    package static func describe(response: [UInt8], sent: [UInt8], secrets: [String]) -> String? {
        guard !response.isEmpty else { return nil }
        let secretBytes = secrets.filter { !$0.isEmpty }.map { Array($0.utf8) }
        var end = min(response.count, maximumBytes)
        var moved = true
        while moved {
            moved = false
            for secret in secretBytes {
                var start = max(0, end - secret.count + 1)
                while start < end {
                    // A secret the answer itself cuts short (a proxy that truncates its echo) counts too.
                    let rest = response[start...]
                    if rest.count >= secret.count ? rest.starts(with: secret) : secret.starts(with: rest) {
                        end = start
                        moved = true
                        break
                    }
                    start += 1
                }
            }
        }
        // Cut at a character boundary: a UTF-8 sequence cut in two would show as a replacement character.
        if end < response.count {
            while end > 0 && response[end] & 0xC0 == 0x80 { end -= 1 }
        }
        let length = "\(response.count) bytes"
        let redactedExcerpt = redact(Array(response[..<end]), secretBytes)
        if isCopy(redactedExcerpt, of: sent) {
            return "(\(length), not shown: it repeats the request)"
        }
        let text = LogText.singleLine(String(decoding: redactedExcerpt, as: UTF8.self))
        return end == response.count ? text : text + "... (\(length))"
    }

    /// `bytes` with every occurrence of a secret replaced by `<redacted>`.
    static func redact(_ bytes: [UInt8], _ secrets: [[UInt8]]) -> [UInt8] {
        var bytes = bytes
        let marker = Array("<redacted>".utf8)
        for secret in secrets {
            guard bytes.count >= secret.count, let first = secret.first else { continue }
            var result: [UInt8] = []
            result.reserveCapacity(bytes.count)
            var index = 0
            while index < bytes.count {
                if bytes[index] == first, bytes[index...].starts(with: secret) {
                    result += marker
                    index += secret.count
                } else {
                    result.append(bytes[index])
                    index += 1
                }
            }
            bytes = result
        }
        return bytes
    }

    /// Whether `excerpt` repeats part of `sent`: a shared run of ``copiedRunBytes`` bytes, or a JSON string
    /// value of `sent` that is at least ``copiedValueBytes`` long. The redaction marker does not count.
    static func isCopy(_ excerpt: [UInt8], of sent: [UInt8]) -> Bool {
        guard !excerpt.isEmpty, !sent.isEmpty else { return false }
        return excerpt.withUnsafeBufferPointer { excerpt in
            sent.withUnsafeBufferPointer { sent in
                sharesRun(excerpt, with: sent) || holdsStringValue(of: sent, excerpt)
            }
        }
    }

    /// Whether a run of ``copiedRunBytes`` bytes of `excerpt` appears in `sent`. The excerpt is short and
    /// the request up to 500 KB, so the request is scanned once with a rolling 8-byte key into the set of
    /// the excerpt's runs, and a match is checked in full.
    private static func sharesRun(_ excerpt: UnsafeBufferPointer<UInt8>, with sent: UnsafeBufferPointer<UInt8>) -> Bool
    {
        let run = copiedRunBytes
        guard excerpt.count >= run, sent.count >= run else { return false }
        // A bitmap of the keys' low bits filters out nearly every position before the set is asked.
        var keys: Set<UInt64> = []
        var filter = [Bool](repeating: false, count: 1 << 16)
        for start in 0...(excerpt.count - run) {
            let key = key(excerpt, at: start)
            keys.insert(key)
            filter[Int(truncatingIfNeeded: key ^ key >> 24) & 0xFFFF] = true
        }
        var rolling = key(sent, at: 0)
        var start = 0
        while true {
            if filter[Int(truncatingIfNeeded: rolling ^ rolling >> 24) & 0xFFFF], keys.contains(rolling) {
                for index in 0...(excerpt.count - run) where equal(excerpt, index, sent, start, count: run) {
                    return true
                }
            }
            start += 1
            guard start + run <= sent.count else { return false }
            rolling = rolling << 8 | UInt64(sent[start + 7])
        }
    }

    /// The first eight bytes at `start`, as one number.
    private static func key(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> UInt64 {
        var key: UInt64 = 0
        for index in start..<start + 8 { key = key << 8 | UInt64(bytes[index]) }
        return key
    }

    /// Whether `excerpt` holds a string value (not a key) of the JSON text `json`, as written (escapes
    /// kept), of at least ``copiedValueBytes`` bytes.
    private static func holdsStringValue(of json: UnsafeBufferPointer<UInt8>, _ excerpt: UnsafeBufferPointer<UInt8>)
        -> Bool
    {
        let quote = UInt8(ascii: "\"")
        let backslash = UInt8(ascii: "\\")
        let colon = UInt8(ascii: ":")
        let marker = Array("<redacted>".utf8)
        // Where each byte value starts in the excerpt, so a value is compared only where its first byte is.
        var starts = [[Int]](repeating: [], count: 256)
        for offset in 0..<excerpt.count { starts[Int(excerpt[offset])].append(offset) }
        var index = 0
        while index < json.count {
            guard json[index] == quote else {
                index += 1
                continue
            }
            let start = index + 1
            var end = start
            while end < json.count && json[end] != quote { end += json[end] == backslash ? 2 : 1 }
            end = min(end, json.count)
            var next = end + 1
            while next < json.count
                && (json[next] == 0x20 || json[next] == 0x0A || json[next] == 0x0D || json[next] == 0x09)
            {
                next += 1
            }
            let isKey = next < json.count && json[next] == colon
            let length = end - start
            if !isKey, length >= copiedValueBytes, length <= excerpt.count,
                !(length == marker.count && marker.withUnsafeBufferPointer { equal($0, 0, json, start, count: length) })
            {
                for offset in starts[Int(json[start])]
                where offset + length <= excerpt.count && equal(excerpt, offset, json, start, count: length) {
                    return true
                }
            }
            index = end + 1
        }
        return false
    }

    /// Whether `count` bytes of `a` from `i` equal those of `b` from `j`.
    private static func equal(
        _ a: UnsafeBufferPointer<UInt8>, _ i: Int, _ b: UnsafeBufferPointer<UInt8>, _ j: Int, count: Int
    ) -> Bool {
        var k = 0
        while k < count {
            if a[i + k] != b[j + k] { return false }
            k += 1
        }
        return true
    }
}
