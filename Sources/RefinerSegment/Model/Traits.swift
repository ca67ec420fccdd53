/// Traits: trait keys and their values, kept sorted by key.
///
/// Sorted storage gives a stable key order on the wire (golden files and byte comparisons work) without
/// sorting on every encode. Setting a key that is present replaces its value: the latest answer wins.
/// The JSON form is an object.
public struct Traits: Sendable, Hashable {
    /// The traits, sorted by key: one array, so a set of traits is one allocation.
    private var storage: [Entry] = []

    private struct Entry: Sendable, Hashable {
        var key: String
        var value: AnswerValue
        /// Whether the key is known to need no JSON escaping (made by the normalizer: `[a-z0-9_]`), so that
        /// encoding copies it without a scan. Not part of the value: equal traits may differ in it.
        var isPlainKey = false

        init(key: String, value: AnswerValue, isPlainKey: Bool = false) {
            self.key = key
            self.value = value
            self.isPlainKey = isPlainKey
        }

        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.key == rhs.key && lhs.value == rhs.value }

        func hash(into hasher: inout Hasher) {
            hasher.combine(key)
            hasher.combine(value)
        }
    }

    /// Creates empty traits.
    public init() {}

    /// The number of traits.
    public var count: Int { storage.count }
    /// Whether there are no traits.
    public var isEmpty: Bool { storage.isEmpty }

    /// The value of a trait; setting `nil` removes the trait.
    public subscript(key: String) -> AnswerValue? {
        get {
            let (index, found) = position(of: key)
            return found ? storage[index].value : nil
        }
        set {
            let (index, found) = position(of: key)
            switch (found, newValue) {
            case (true, let value?): storage[index].value = value
            case (true, nil): storage.remove(at: index)
            case (false, let value?):
                if index == storage.count {
                    storage.append(Entry(key: key, value: value))
                } else {
                    storage.insert(Entry(key: key, value: value), at: index)
                }
            case (false, nil): break
            }
        }
    }

    /// Reserves room for `capacity` traits, so that adding that many allocates once.
    public mutating func reserveCapacity(_ capacity: Int) {
        storage.reserveCapacity(capacity)
    }

    /// Appends a trait whose key sorts after every key present (the builder's keys, in their sorted order).
    /// `isPlainKey`: the key is the normalizer's, so it needs no escaping.
    mutating func appendSorted(_ key: String, _ value: AnswerValue, isPlainKey: Bool = false) {
        assert(storage.last.map { $0.key < key } ?? true, "appendSorted out of order")
        assert(!isPlainKey || key.utf8.allSatisfy { JSONWriter.isPlainKeyByte($0) }, "a plain key needs escaping")
        storage.append(Entry(key: key, value: value, isPlainKey: isPlainKey))
    }

    /// The traits in key order, each with whether its key is known to need no JSON escaping (see
    /// ``appendSorted(_:_:isPlainKey:)``).
    var entriesWithPlainness: some Sequence<(key: String, value: AnswerValue, isPlainKey: Bool)> {
        storage.lazy.map { (key: $0.key, value: $0.value, isPlainKey: $0.isPlainKey) }
    }

    /// Sets every trait of `other` on these traits; where both have a key, `other`'s value wins.
    public mutating func merge(_ other: Traits) {
        for (key, value) in other { self[key] = value }
    }

    /// These traits with every trait of `other` set on them; where both have a key, `other`'s value wins.
    public func merging(_ other: Traits) -> Traits {
        var merged = self
        merged.merge(other)
        return merged
    }

    /// Binary search: the index of `key`, or where it would be inserted.
    private func position(of key: String) -> (index: Int, found: Bool) {
        storage.sortedPosition(of: key) { $0.key }
    }
}

extension Traits: RandomAccessCollection {
    /// A trait: its key and value.
    public typealias Element = (key: String, value: AnswerValue)

    /// The first position.
    public var startIndex: Int { 0 }
    /// The position after the last trait.
    public var endIndex: Int { storage.count }
    /// The trait at a position, in key order.
    public subscript(position: Int) -> Element { (storage[position].key, storage[position].value) }
}

extension Traits: ExpressibleByDictionaryLiteral {
    /// A trait key.
    public typealias Key = String
    /// A trait value.
    public typealias Value = AnswerValue

    /// Creates traits from a literal; a key given twice keeps its last value.
    public init(dictionaryLiteral elements: (String, AnswerValue)...) {
        self.init()
        for (key, value) in elements { self[key] = value }
    }
}

extension Traits: Codable {
    private struct TraitCodingKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes a JSON object of trait values; `null` values are skipped.
    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: TraitCodingKey.self)
        for key in container.allKeys {
            if let value = try container.decodeIfPresent(AnswerValue.self, forKey: key) {
                self[key.stringValue] = value
            }
        }
    }

    /// Encodes a JSON object of trait values.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TraitCodingKey.self)
        for (key, value) in self { try container.encode(value, forKey: TraitCodingKey(stringValue: key)) }
    }
}
