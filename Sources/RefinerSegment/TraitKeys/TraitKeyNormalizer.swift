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
        String(decoding: keyBytes(for: text, questionID: questionID), as: UTF8.self)
    }

    /// The key as UTF-8 bytes: steps 1 to 9 of the rules.
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
        let cutInsideWord = key[limit - 1] != UInt8(ascii: "_") && key[limit] != UInt8(ascii: "_")
        key.removeSubrange(limit...)
        // Back to the last word boundary inside the body; one word longer than the limit is cut hard.
        if cutInsideWord, let lastUnderscore = key.lastIndex(of: UInt8(ascii: "_")), lastUnderscore > kept {
            key.removeSubrange(lastUnderscore...)
        }
        while key.count > kept, key.last == UInt8(ascii: "_") { key.removeLast() }
    }

    /// Steps 1 to 6 of the rules: the body of a key, without prefix, fallback or cap.
    static func foldBody(_ text: String) -> [UInt8] {
        let utf8 = text.utf8
        // The common case: ASCII text goes straight to the byte loop, with no Unicode tables at all.
        if let folded = utf8.withContiguousStorageIfAvailable({ bytes -> [UInt8]? in
            for byte in bytes where byte >= 0x80 { return nil }
            return foldASCII(bytes)
        }) {
            if let folded { return folded }
        } else if utf8.allSatisfy({ $0 < 0x80 }) {
            return foldASCII(Array(utf8))
        }
        var ascii: [UInt8] = []
        ascii.reserveCapacity(utf8.count)
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                ascii.append(UInt8(truncatingIfNeeded: scalar.value))
            } else if let folded = TransliterationTable.shared.folded(scalar) {
                ascii.append(contentsOf: folded)
            } else if scalar.properties.generalCategory == .nonspacingMark {
                // A mark newer than the table's Unicode version: dropped, as step 2 says.
            } else {
                ascii.append(UInt8(ascii: " "))
            }
        }
        return ascii.withUnsafeBufferPointer { foldASCII($0) }
    }

    /// Steps 3, 5 and 6 over ASCII bytes: lowercase, drop in-word apostrophes, runs of others to one `_`.
    static func foldASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var pendingSeparator = false
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = lowercased(bytes[index])
            if isAlphanumeric(byte) {
                if pendingSeparator, !out.isEmpty { out.append(UInt8(ascii: "_")) }
                pendingSeparator = false
                out.append(byte)
            } else if byte == UInt8(ascii: "'"), index > 0, index + 1 < count,
                isAlphanumeric(lowercased(bytes[index - 1])), isAlphanumeric(lowercased(bytes[index + 1]))
            {
                // `What's` -> `whats`: an apostrophe inside a word is no word boundary.
            } else {
                pendingSeparator = true
            }
            index += 1
        }
        return out
    }

    static func foldASCII(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBufferPointer { foldASCII($0) }
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
