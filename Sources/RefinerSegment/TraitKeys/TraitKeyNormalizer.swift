/// Turns question texts and custom property names into Segment trait keys.
///
/// A key is the configured prefix (default `refiner_`) followed by a body derived from the text by the rules
/// in `Docs/TraitKeys.md`: compatibility decomposition, marks dropped, lowercase, a fixed transliteration
/// table, in-word apostrophes dropped, every other run of characters outside `a-z0-9` folded to one `_`.
/// An empty body falls back to `question_` and the question id; a body that already carries the prefix is
/// not prefixed again; a key longer than the limit is cut at a word boundary.
///
/// The normalizer is pure and total: every input gives a key matching `^[a-z0-9]+(_[a-z0-9]+)*$`, and
/// normalizing a key again returns it unchanged. ASCII input takes a byte loop that touches no Foundation.
/// It is a value; share it freely across tasks.
public struct TraitKeyNormalizer: Sendable, Hashable {
    /// The normalizer's settings.
    public struct Configuration: Sendable, Hashable {
        /// The text every key starts with, `refiner_` by default.
        ///
        /// It is normalized like a key body when the normalizer is made, and gets a trailing `_` when it is
        /// not empty and has none, so `Refiner` and `refiner_` give the same keys. An empty prefix is allowed.
        public var prefix: String
        /// The longest key in UTF-8 bytes, prefix included: 127 by default (Redshift's identifier limit);
        /// 63 suits Postgres. It must leave room for at least 8 bytes after the prefix (a word and a
        /// collision suffix such as `_2`).
        public var maximumLength: Int

        /// Creates a configuration; the defaults are the ones Refiner's own Segment source uses.
        public init(prefix: String = "refiner_", maximumLength: Int = 127) {
            self.prefix = prefix
            self.maximumLength = maximumLength
        }
    }

    /// The prefix in its normalized form, as it starts every key (`refiner_`, or empty).
    public let prefix: String
    /// The longest key in bytes, prefix included.
    public let maximumLength: Int
    private let prefixBytes: [UInt8]
    /// The room a key must have after its prefix: a word and a collision suffix.
    static let minimumBodyLength = 8

    /// Creates a normalizer.
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidConfiguration`` when the
    ///   maximum length leaves less than 8 bytes after the prefix.
    public init(configuration: Configuration = Configuration()) throws(RefinerSegmentError) {
        var prefix = Self.foldBody(configuration.prefix)
        if !prefix.isEmpty { prefix.append(UInt8(ascii: "_")) }
        guard configuration.maximumLength >= prefix.count + Self.minimumBodyLength else {
            throw RefinerSegmentError(
                code: .invalidConfiguration,
                detail: "the maximum key length \(configuration.maximumLength) leaves less than "
                    + "\(Self.minimumBodyLength) bytes after the prefix '\(String(decoding: prefix, as: UTF8.self))'"
            )
        }
        self.prefixBytes = prefix
        self.prefix = String(decoding: prefix, as: UTF8.self)
        self.maximumLength = configuration.maximumLength
    }

    /// The trait key for a question: its custom property name when it has one, else its text.
    ///
    /// This is the key of one question alone; ``keys(for:)`` gives a survey's keys with collisions resolved.
    public func key(for question: Question) -> String {
        key(for: question.propertyName ?? question.text, questionID: question.id)
    }

    /// The trait key for a text (a question's text or a custom property name).
    ///
    /// - Parameters:
    ///   - text: The question text or custom name; any string, including empty.
    ///   - questionID: The question's id, used for the body when the text yields nothing (an all-CJK or
    ///     emoji-only question), so that no answer is lost for want of a key.
    public func key(for text: String, questionID: String = "") -> String {
        let folded = text.utf8.withContiguousStorageIfAvailable { input -> String? in
            // The hot path: ASCII text folds straight into the key's storage.
            if Self.isASCII(input) { return makeKey(folding: input) }
            // Other text is first mapped to ASCII scalar by scalar (steps 1 to 4) into a buffer on the stack,
            // then folded the same way.
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * input.count) { buffer in
                let count = Self.transliterate(input, into: buffer.baseAddress!)
                return makeKey(folding: UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        }
        if let folded, let key = folded { return key }
        if folded == nil {
            // A string without contiguous UTF-8 (bridged): the same steps over a copy of its bytes.
            let ascii = Self.transliterated(text)
            if let key = ascii.withUnsafeBufferPointer({ makeKey(folding: $0) }) { return key }
        }
        // Folds to nothing: the fallback body from the question id.
        return String(decoding: keyBytes(for: text, questionID: questionID), as: UTF8.self)
    }

    /// Whether every byte is ASCII, eight at a time.
    private static func isASCII(_ input: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = input.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let count = input.count
        var index = 0
        var high: UInt64 = 0
        while index + 8 <= count {
            high |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            high |= UInt64(base[index])
            index += 1
        }
        return SWAR.nonASCIIBytes(in: high) == 0
    }

    /// The key for ASCII input that folds to a non-empty body (steps 3, 5, 6, 8 and 9), written straight into
    /// the string's storage: one allocation, none for keys of 15 bytes or less. `nil` when the input holds a
    /// non-ASCII byte or folds to nothing.
    private func makeKey(folding input: UnsafeBufferPointer<UInt8>) -> String? {
        let prefix = prefixBytes
        let limit = maximumLength
        var isFolded = true
        let key = String(unsafeUninitializedCapacity: prefix.count + input.count) { output in
            guard let end = Self.foldASCII(input, into: output, at: prefix.count), end > prefix.count else {
                isFolded = false
                return 0
            }
            let bodyCount = end - prefix.count
            var count = end
            if !prefix.isEmpty, bodyCount > prefix.count, Self.hasPrefix(output, at: prefix.count, prefix) {
                // Already prefixed (step 8): move the body to the front instead of prefixing it again.
                for index in 0..<bodyCount { output[index] = output[prefix.count + index] }
                count = bodyCount
            } else {
                for index in 0..<prefix.count { output[index] = prefix[index] }
            }
            return Self.cappedLength(output, count: count, limit: limit, kept: prefix.count)
        }
        return isFolded ? key : nil
    }

    /// The key as UTF-8 bytes: steps 1 to 9 of the rules, for any text.
    func keyBytes(for text: String, questionID: String) -> [UInt8] {
        var body = Self.foldBody(text)
        if body.isEmpty {
            body = Array("question_".utf8) + Self.foldBody(questionID)
            // An id that folds to nothing leaves `question_`; its trailing `_` goes (step 6).
            if body.last == UInt8(ascii: "_") { body.removeLast() }
        }
        var key: [UInt8]
        if !prefixBytes.isEmpty, body.starts(with: prefixBytes), body.count > prefixBytes.count {
            key = body  // already prefixed: normalizing is idempotent
        } else {
            key = prefixBytes
            key.append(contentsOf: body)
        }
        Self.cap(&key, to: maximumLength, keeping: prefixBytes.count)
        return key
    }

    /// Cuts `key` to `limit` bytes at a word boundary, never into the first `kept` bytes (the prefix).
    static func cap(_ key: inout [UInt8], to limit: Int, keeping kept: Int) {
        guard key.count > limit else { return }
        let count = key.withUnsafeMutableBufferPointer { cappedLength($0, count: $0.count, limit: limit, kept: kept) }
        key.removeSubrange(count...)
    }

    /// The length of `key[..<count]` cut to `limit` bytes (step 9): back to the last `_` when the cut falls
    /// inside a word (a single word longer than the limit is cut hard), trailing `_` removed, never into the
    /// first `kept` bytes.
    static func cappedLength(_ key: UnsafeMutableBufferPointer<UInt8>, count: Int, limit: Int, kept: Int) -> Int {
        guard count > limit else { return count }
        let underscore = UInt8(ascii: "_")
        var length = limit
        if key[limit - 1] != underscore, key[limit] != underscore {
            var index = limit - 1
            while index > kept, key[index] != underscore { index -= 1 }
            if index > kept { length = index }
        }
        while length > kept, key[length - 1] == underscore { length -= 1 }
        return length
    }

    private static func hasPrefix(_ buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int, _ prefix: [UInt8]) -> Bool
    {
        for index in 0..<prefix.count where buffer[start + index] != prefix[index] { return false }
        return true
    }

    /// Steps 1 to 6 of the rules: the body of a key, without prefix, fallback or cap.
    static func foldBody(_ text: String) -> [UInt8] {
        transliterated(text).withUnsafeBufferPointer { input in
            [UInt8](unsafeUninitializedCapacity: input.count) { output, count in
                count = foldASCII(input, into: output, at: 0) ?? 0
            }
        }
    }

    /// Steps 1 to 4 scalar by scalar: ASCII letters, digits and apostrophes, with a space for a separator.
    static func transliterated(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { input in
            [UInt8](unsafeUninitializedCapacity: input.count * 2) { output, count in
                count = transliterate(input, into: output.baseAddress!)
            }
        }
    }

    /// ``transliterated(_:)`` of valid UTF-8 into `output`, which has room for twice the input's bytes (no
    /// scalar folds to more than twice its UTF-8 length: the table's longest, `㎯` -> `rad s2`, is 6 bytes
    /// from 3). Returns the bytes written.
    static func transliterate(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutablePointer<UInt8>) -> Int {
        TransliterationTable.shared.transliterate(input, into: output)
    }

    /// Steps 3, 5 and 6 over ASCII bytes: lowercase, drop in-word apostrophes, runs of others to one `_`.
    ///
    /// Writes the folded body into `output` from `start` (which needs room for `input.count` bytes: the body
    /// is never longer than its input) and returns where it ends, or `nil` at the first non-ASCII byte.
    @inline(__always)
    static func foldASCII(
        _ input: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<UInt8>,
        at start: Int
    ) -> Int? {
        // One table load per byte: a letter or digit folds to itself lowercased, the rest to a separator.
        asciiFold.withUnsafeBufferPointer { fold -> Int? in
            // Declared in the closure, so that they stay in registers.
            var end = start
            var pendingSeparator = false
            let count = input.count
            var index = 0
            let apostrophe = UInt8(ascii: "'")
            while index < count {
                let byte = fold[Int(input[index])]
                if byte > apostrophe {
                    if pendingSeparator, end > start {
                        output[end] = UInt8(ascii: "_")
                        end += 1
                    }
                    pendingSeparator = false
                    output[end] = byte
                    end += 1
                    index += 1
                    // The rest of the word, in a tight loop.
                    while index < count {
                        let next = fold[Int(input[index])]
                        guard next > apostrophe else { break }
                        output[end] = next
                        end += 1
                        index += 1
                    }
                    continue
                }
                if byte == nonASCII { return nil }
                if byte == apostrophe, index > 0, index + 1 < count, fold[Int(input[index - 1])] > apostrophe,
                    fold[Int(input[index + 1])] > apostrophe
                {
                    // `What's` -> `whats`: an apostrophe inside a word is no word boundary.
                } else {
                    pendingSeparator = true
                }
                index += 1
            }
            return end
        }
    }

    /// What ``asciiFold`` maps a byte of 0x80 and above to: the ASCII fold stops there.
    private static let nonASCII: UInt8 = 1

    /// What each byte folds to in ``foldASCII(_:into:at:)``: `a-z` and `0-9` for letters and digits (lowercased),
    /// the apostrophe for itself, ``nonASCII`` for bytes of 0x80 and above, 0 for a separator (any other byte).
    private static let asciiFold: [UInt8] = (0..<256).map { value in
        guard value < 0x80 else { return nonASCII }
        let byte = lowercased(UInt8(value))
        if isAlphanumeric(byte) { return byte }
        return byte == UInt8(ascii: "'") ? byte : 0
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    @inline(__always)
    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "a") < 26 || byte &- UInt8(ascii: "0") < 10
    }
}
