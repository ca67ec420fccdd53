extension Array {
    /// Binary search in an array sorted by a string key: the index of `key`, or where it would be inserted.
    /// Shared by ``Traits`` and ``CollectedTraits``, whose storage is sorted by trait key.
    @inline(__always)
    func sortedPosition(of key: String, keyOf: (Element) -> String) -> (index: Int, found: Bool) {
        // Appending in order is the common case (keys built in sorted order, or a single new key).
        if let last = last.map(keyOf), last < key { return (count, false) }
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            let candidate = keyOf(self[middle])
            if candidate < key {
                low = middle + 1
            } else if candidate == key {
                return (middle, true)
            } else {
                high = middle
            }
        }
        return (low, false)
    }
}
