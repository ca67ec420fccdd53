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

    /// A newcomer's traits as a view of the response that set them: the response's answers, the survey's
    /// cached keys and the positions of this side's answers in key order (each with a value), all answered at
    /// one time. Nothing is copied per trait and nothing is allocated; the first change turns it into entries.
    struct AnswerView: Sendable {
        let answers: [Answer]
        let resolved: ResolvedKeys
        /// Where this side's order starts in the resolved keys' positions.
        let start: Int
        /// The number of traits.
        let count: Int
        let answeredAt: AnswerTime

        /// The position in ``answers`` (and the keys) of the trait at `position` in key order.
        @inline(__always)
        func index(_ position: Int) -> Int { resolved.positions[start + position] }
    }

    /// Sorted by key: one array, so a profile's traits are one allocation. Empty while ``view`` holds them.
    private var storage: [Entry] = []
    /// The traits, when they are a view of one response's answers (``storage`` is then empty).
    private var view: AnswerView?

    /// Creates empty traits.
    public init() {}

    /// Traits known without a time, each counted as answered at `answeredAt`.
    public init(_ traits: Traits, answeredAt: AnswerTime = .distantPast) {
        mergeAscending(traits.entriesWithPlainness, count: traits.count, answeredAt: answeredAt)
    }

    /// The number of traits.
    public var count: Int { view?.count ?? storage.count }
    /// Whether there are no traits.
    public var isEmpty: Bool { count == 0 }

    /// The key of the trait at a position, in key order.
    private func key(at position: Int) -> String {
        guard let view else { return storage[position].key }
        return view.resolved.keys[view.index(position)]
    }

    /// The traits as a view of `answers` at the resolved keys' positions `side` (each answer there has a
    /// value), all answered at `answeredAt`. Only for empty traits.
    mutating func setView(answers: [Answer], resolved: ResolvedKeys, side: Range<Int>, answeredAt: AnswerTime) {
        view = AnswerView(
            answers: answers, resolved: resolved, start: side.lowerBound, count: side.count, answeredAt: answeredAt)
    }

    /// A view's traits made entries, before any change.
    @inline(__always)
    private mutating func materialize() {
        guard view != nil else { return }
        materializeView()
    }

    @inline(never)
    private mutating func materializeView() {
        guard let view else { return }
        self.view = nil
        storage.reserveCapacity(view.count)
        for position in 0..<view.count {
            let index = view.index(position)
            guard let value = view.answers[index].value else { continue }
            storage.append(
                Entry(key: view.resolved.keys[index], value: value, answeredAt: view.answeredAt, isPlainKey: true))
        }
    }

    /// The latest value of a trait.
    public subscript(key: String) -> AnswerValue? {
        let (index, found) = position(of: key)
        return found ? self[index].value : nil
    }

    /// The entry of a trait: its value and when it was answered.
    public func entry(for key: String) -> Entry? {
        let (index, found) = position(of: key)
        return found ? self[index] : nil
    }

    /// The values without their times.
    public var values: Traits {
        var traits = Traits()
        traits.reserveCapacity(count)
        for entry in self { traits[entry.key] = entry.value }
        return traits
    }

    /// Reserves room for `capacity` traits.
    public mutating func reserveCapacity(_ capacity: Int) {
        materialize()
        storage.reserveCapacity(capacity)
    }

    /// Merges one answer: it replaces the stored one only when it was answered later.
    ///
    /// - Returns: Whether the traits changed.
    @discardableResult
    public mutating func merge(_ key: String, value: AnswerValue, answeredAt: AnswerTime) -> Bool {
        materialize()
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
        materialize()
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
        guard isEmpty else { return mergeAscending(traits, count: count, answeredAt: answeredAt) }
        view = nil
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
        // Called through the optional, the view is borrowed where it is (`if let` would copy it: three retains).
        if extra == nil, view != nil {
            view?.writeMembers(to: &writer)
            return
        }
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
        for entry in self {
            if !extraWritten, entry.key >= extra.key {
                writer.key(extra.key)
                writer.string(extra.value)
                extraWritten = true
                if entry.key == extra.key { continue }
            }
            writer.key(entry.key)
            writer.value(entry.value)
        }
        if !extraWritten {
            writer.key(extra.key)
            writer.string(extra.value)
        }
    }

}

extension CollectedTraits.AnswerView {
    /// ``CollectedTraits/writeMembers(to:extra:)`` of a view: over the arrays' buffers, each key plain (the
    /// normalizer's).
    func writeMembers(to writer: inout JSONWriter) {
        answers.withUnsafeBufferPointer { answers in
            resolved.keys.withUnsafeBufferPointer { keys in
                resolved.positions.withUnsafeBufferPointer { positions in
                    guard let answers = answers.baseAddress, let keys = keys.baseAddress,
                        let order = positions.baseAddress
                    else { return }
                    for position in start..<start + count {
                        let index = order[position]
                        // Read through the pointers, in place, as the entries' path does.
                        let key = keys + index
                        let answer = answers + index
                        var valueLength = 0
                        if case .string(let text)? = answer.pointee.value { valueLength = text.utf8.count }
                        writer.reserveMember(key.pointee.utf8.count + valueLength + 16)
                        if !writer.plainKey(reserved: key.pointee) { writer.key(key.pointee) }
                        var written = false
                        answer.pointee.value?.withString { written = writer.string(reserved: $0) }
                        if !written, let value = answer.pointee.value { writer.value(value) }
                    }
                }
            }
        }
    }
}

extension CollectedTraits {

    /// Merges every trait of `other`.
    public mutating func merge(_ other: CollectedTraits) {
        for entry in other { merge(entry.key, value: entry.value, answeredAt: entry.answeredAt) }
    }

    /// These traits with `other` merged in.
    public func merging(_ other: CollectedTraits) -> CollectedTraits {
        var merged = self
        merged.merge(other)
        return merged
    }

    /// Appends an entry known to sort after every stored key (decoding stored profiles in key order).
    mutating func appendSorted(_ entry: Entry) -> Bool {
        materialize()
        guard storage.last.map({ $0.key < entry.key }) ?? true else { return false }
        storage.append(entry)
        return true
    }

    private func position(of key: String) -> (index: Int, found: Bool) {
        guard view != nil else { return storage.sortedPosition(of: key) { $0.key } }
        var low = 0
        var high = count
        while low < high {
            let middle = low + (high - low) / 2
            if self.key(at: middle) < key { low = middle + 1 } else { high = middle }
        }
        return (low, low < count && self.key(at: low) == key)
    }

    /// Equal when both hold the same entries in the same order, whichever form each is in.
    public static func == (lhs: CollectedTraits, rhs: CollectedTraits) -> Bool {
        if lhs.view == nil, rhs.view == nil { return lhs.storage == rhs.storage }
        return lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }

    /// Hashes the entries, consistently with `==` (the same for both forms).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for entry in self { hasher.combine(entry) }
    }
}

extension CollectedTraits: RandomAccessCollection {
    /// The first position.
    public var startIndex: Int { 0 }
    /// The position after the last trait.
    public var endIndex: Int { count }
    /// The trait at a position, in key order.
    public subscript(position: Int) -> Entry {
        guard let view else { return storage[position] }
        let index = view.index(position)
        // A view holds only answers with a value; `.boolean(false)` is never reached.
        return Entry(
            key: view.resolved.keys[index], value: view.answers[index].value ?? .boolean(false),
            answeredAt: view.answeredAt, isPlainKey: true)
    }
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
        for entry in self {
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
