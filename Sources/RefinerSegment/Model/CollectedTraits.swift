#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Collected traits: trait keys, their values, and when each was answered; kept sorted by key.
///
/// Merging keeps, per key, the answer with the latest ``AnswerTime`` (completion time, then response id),
/// whatever order the answers arrive in: merging is commutative and idempotent, so the same answers merged
/// in any order, any number of times, give equal traits. Two answers with equal times (the same response
/// applied twice) keep the same value; should a host reuse a response id with other answers, the value
/// that sorts last wins, so the result still does not depend on the order.
///
/// The JSON form is an object from trait key to `{"value": ..., "at": "...", "response": "..."}`; the older
/// form, a plain object of values, still decodes, each trait answered at ``AnswerTime/distantPast``.
public struct CollectedTraits: Sendable, Hashable {
    /// One collected trait.
    public struct Entry: Sendable, Hashable {
        /// The trait key.
        public var key: String
        /// The latest answer.
        public var value: AnswerValue
        /// When it was answered.
        public var answeredAt: AnswerTime
        /// Whether the key is known to need no JSON escaping (the normalizer made it), so that encoding
        /// copies it without a scan. Not part of the value: it takes no part in `==` or hashing.
        var isPlainKey: Bool

        /// Creates an entry.
        public init(key: String, value: AnswerValue, answeredAt: AnswerTime) {
            self.init(key: key, value: value, answeredAt: answeredAt, isPlainKey: false)
        }

        init(key: String, value: AnswerValue, answeredAt: AnswerTime, isPlainKey: Bool) {
            self.key = key
            self.value = value
            self.answeredAt = answeredAt
            self.isPlainKey = isPlainKey
        }

        /// Equal when the key, the value and the time are.
        public static func == (lhs: Entry, rhs: Entry) -> Bool {
            lhs.key == rhs.key && lhs.value == rhs.value && lhs.answeredAt == rhs.answeredAt
        }

        /// Hashes the key, the value and the time, consistently with `==`.
        public func hash(into hasher: inout Hasher) {
            hasher.combine(key)
            hasher.combine(value)
            hasher.combine(answeredAt)
        }
    }

    /// Sorted by key: one array, so a profile's traits are one allocation.
    private var storage: [Entry] = []

    /// Creates empty traits.
    public init() {}

    /// Traits known without a time, each counted as answered at `answeredAt`.
    public init(_ traits: Traits, answeredAt: AnswerTime = .distantPast) {
        mergeAscending(traits.entriesWithPlainness, count: traits.count, answeredAt: answeredAt)
    }

    /// The number of traits.
    public var count: Int { storage.count }
    /// Whether there are no traits.
    public var isEmpty: Bool { storage.isEmpty }

    /// The latest value of a trait.
    public subscript(key: String) -> AnswerValue? {
        let (index, found) = position(of: key)
        return found ? storage[index].value : nil
    }

    /// The entry of a trait: its value and when it was answered.
    public func entry(for key: String) -> Entry? {
        let (index, found) = position(of: key)
        return found ? storage[index] : nil
    }

    /// The values without their times.
    public var values: Traits {
        var traits = Traits()
        traits.reserveCapacity(storage.count)
        for entry in storage { traits[entry.key] = entry.value }
        return traits
    }

    /// Reserves room for `capacity` traits.
    public mutating func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity)
    }

    /// Merges one answer: it replaces the stored one only when it was answered later.
    ///
    /// - Returns: Whether the traits changed.
    @discardableResult
    public mutating func merge(_ key: String, value: AnswerValue, answeredAt: AnswerTime) -> Bool {
        let (index, found) = position(of: key)
        guard found else {
            let entry = Entry(key: key, value: value, answeredAt: answeredAt)
            if index == storage.count { storage.append(entry) } else { storage.insert(entry, at: index) }
            return true
        }
        return replace(at: index, value: value, answeredAt: answeredAt)
    }

    /// Replaces the answer at `index` when the new one was answered later (ties: the value that sorts last).
    private mutating func replace(at index: Int, value: AnswerValue, answeredAt: AnswerTime) -> Bool {
        let stored = storage[index].answeredAt
        if stored < answeredAt || (stored == answeredAt && AnswerValue.orders(storage[index].value, before: value)) {
            storage[index].value = value
            storage[index].answeredAt = answeredAt
            return true
        }
        return false
    }

    /// Merges every trait of `traits`, all answered at `answeredAt`.
    public mutating func merge(_ traits: Traits, answeredAt: AnswerTime) {
        mergeAscending(traits.entriesWithPlainness, count: traits.count, answeredAt: answeredAt)
    }

    /// Merges `count` traits given in ascending key order (distinct keys), all answered at `answeredAt`.
    ///
    /// Both are sorted by key, so one walk over both does it, about one comparison per key (keys from the
    /// builder's cache share their storage with the stored ones, which makes comparing them a pointer
    /// comparison); a newcomer's traits are appended.
    mutating func mergeAscending(
        _ traits: some Sequence<(key: String, value: AnswerValue, isPlainKey: Bool)>, count: Int,
        answeredAt: AnswerTime
    ) {
        guard !storage.isEmpty else {
            storage.reserveCapacity(count)
            for trait in traits {
                storage.append(
                    Entry(key: trait.key, value: trait.value, answeredAt: answeredAt, isPlainKey: trait.isPlainKey))
            }
            return
        }
        var cursor = 0
        for trait in traits {
            while cursor < storage.count, storage[cursor].key < trait.key { cursor += 1 }
            if cursor < storage.count, storage[cursor].key == trait.key {
                _ = replace(at: cursor, value: trait.value, answeredAt: answeredAt)
            } else {
                let entry = Entry(
                    key: trait.key, value: trait.value, answeredAt: answeredAt, isPlainKey: trait.isPlainKey)
                storage.insert(entry, at: cursor)
            }
            cursor += 1
        }
    }

    /// ``mergeAscending(_:count:answeredAt:)`` of a response's answers; a newcomer's traits are made straight
    /// from the answers (each value copied once, not through a tuple of its own).
    mutating func mergeAnswers(_ traits: AnswerTraits, count: Int, answeredAt: AnswerTime) {
        guard storage.isEmpty else { return mergeAscending(traits, count: count, answeredAt: answeredAt) }
        storage.reserveCapacity(count)
        var traits = traits
        while let index = traits.nextIndex() {
            guard let value = traits.answers[index].value else { continue }
            storage.append(Entry(key: traits.keys[index], value: value, answeredAt: answeredAt, isPlainKey: true))
        }
    }

    /// Writes the traits as the members of an object, in key order. `extra` (the builder's email) is written
    /// at its place in that order, and replaces a trait with the same key.
    func writeMembers(to writer: inout JSONWriter, extra: (key: String, value: String)? = nil) {
        guard let extra else {
            // Over the buffer: its entries are read in place, not copied out one by one.
            storage.withUnsafeBufferPointer { entries in
                guard let first = entries.baseAddress else { return }
                for index in entries.indices {
                    // Read through the pointer, in place: a key or value copied out is retained and released.
                    let entry = first + index
                    // The common case (a plain key, a string that needs no escaping) with the room for both
                    // made first, so that nothing between reading the strings and writing them can free memory
                    // and they need not be retained; anything else is written by the general methods.
                    var valueLength = 0
                    if case .string(let text) = entry.pointee.value { valueLength = text.utf8.count }
                    writer.reserveMember(entry.pointee.key.utf8.count + valueLength + 16)
                    var keyWritten = false
                    if entry.pointee.isPlainKey { keyWritten = writer.plainKey(reserved: entry.pointee.key) }
                    if !keyWritten { writer.key(entry.pointee.key) }
                    var written = false
                    entry.pointee.value.withString { written = writer.string(reserved: $0) }
                    if !written { writer.value(entry.pointee.value) }
                }
            }
            return
        }
        var extraWritten = false
        for index in storage.indices {
            if !extraWritten, storage[index].key >= extra.key {
                writer.key(extra.key)
                writer.string(extra.value)
                extraWritten = true
                if storage[index].key == extra.key { continue }
            }
            writer.key(storage[index].key)
            writer.value(storage[index].value)
        }
        if !extraWritten {
            writer.key(extra.key)
            writer.string(extra.value)
        }
    }

    /// Merges every trait of `other`.
    public mutating func merge(_ other: CollectedTraits) {
        for entry in other.storage { merge(entry.key, value: entry.value, answeredAt: entry.answeredAt) }
    }

    /// These traits with `other` merged in.
    public func merging(_ other: CollectedTraits) -> CollectedTraits {
        var merged = self
        merged.merge(other)
        return merged
    }

    /// Appends an entry known to sort after every stored key (decoding stored profiles in key order).
    mutating func appendSorted(_ entry: Entry) -> Bool {
        guard storage.last.map({ $0.key < entry.key }) ?? true else { return false }
        storage.append(entry)
        return true
    }

    private func position(of key: String) -> (index: Int, found: Bool) {
        storage.sortedPosition(of: key) { $0.key }
    }
}

extension CollectedTraits: RandomAccessCollection {
    /// The first position.
    public var startIndex: Int { 0 }
    /// The position after the last trait.
    public var endIndex: Int { storage.count }
    /// The trait at a position, in key order.
    public subscript(position: Int) -> Entry { storage[position] }
}

extension CollectedTraits: Codable {
    private struct TraitCodingKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private enum EntryCodingKeys: String, CodingKey {
        case value
        case at
        case response
    }

    /// Decodes `{"key": {"value": ..., "at": ..., "response": ...}}`, or the older `{"key": value}` (each
    /// trait answered at ``AnswerTime/distantPast``); `null` values are skipped.
    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: TraitCodingKey.self)
        for key in container.allKeys {
            if let entry = try? container.nestedContainer(keyedBy: EntryCodingKeys.self, forKey: key) {
                let value = try entry.decode(AnswerValue.self, forKey: .value)
                let time = try AnswerTime(from: container.superDecoder(forKey: key))
                merge(key.stringValue, value: value, answeredAt: time)
            } else if let value = try container.decodeIfPresent(AnswerValue.self, forKey: key) {
                merge(key.stringValue, value: value, answeredAt: .distantPast)
            }
        }
    }

    /// Encodes `{"key": {"value": ..., "at": "2026-11-20T10:15:00.000000Z", "response": "resp_123"}}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TraitCodingKey.self)
        for entry in storage {
            let key = TraitCodingKey(stringValue: entry.key)
            var nested = container.nestedContainer(keyedBy: EntryCodingKeys.self, forKey: key)
            try nested.encode(entry.value, forKey: .value)
            try nested.encode(AnswerTime.string(fromMicroseconds: entry.answeredAt.microseconds), forKey: .at)
            try nested.encode(entry.answeredAt.responseID, forKey: .response)
        }
    }
}

extension AnswerValue {
    /// Calls `body` with the text of a ``string(_:)`` value, borrowed rather than copied; nothing for others.
    @inline(__always)
    func withString(_ body: (borrowing String) -> Void) {
        if case .string(let text) = self { body(text) }
    }

    /// A total order on values, used only to settle two different answers with equal times, so that the
    /// winner does not depend on the order they were merged in.
    static func orders(_ lhs: AnswerValue, before rhs: AnswerValue) -> Bool {
        func rank(_ value: AnswerValue) -> Int {
            switch value {
            case .string: 0
            case .integer: 1
            case .decimal: 2
            case .boolean: 3
            case .strings: 4
            case .date: 5
            }
        }
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
        case (.integer(let a), .integer(let b)): return a < b
        case (.decimal(let a), .decimal(let b)): return a.bitPattern < b.bitPattern
        case (.boolean(let a), .boolean(let b)): return !a && b
        case (.strings(let a), .strings(let b)):
            return a.lexicographicallyPrecedes(b) { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        case (.date(let a), .date(let b)):
            return a.timeIntervalSinceReferenceDate.bitPattern < b.timeIntervalSinceReferenceDate.bitPattern
        default: return rank(lhs) < rank(rhs)
        }
    }
}
