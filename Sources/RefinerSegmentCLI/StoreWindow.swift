/// How `send --tenants --store` stores a window of units read from an input whose tenants interleave:
/// one append for each tenant (tenants in the order they first appear, each tenant's units in input
/// order), and the input cursor each unit's append writes as the store's mark.
///
/// Appending tenant by tenant makes one `fsync` wait for each tenant in the window, where recording the
/// units in input order made one for every change of tenant (one a line for an input that alternates).
/// The price is that a tenant stored first has units past a line of another tenant not stored yet, so
/// the cursor after a unit is the line through which every record is done, plus the ranges of lines
/// past it that are stored too (``InputCursor/beyond``): a re-run reads the input again and skips exactly
/// those, so a kill at any moment leaves no unit stored twice and none skipped.
///
/// A pure computation, apart from the reading loop and the store, so tests drive it directly.
struct StoreWindow: Sendable {
    /// A unit read and not yet recorded.
    struct Unit: Sendable, Equatable {
        var tenant: String
        /// The lines its records end on, first to last (a unit's records are consecutive).
        var lines: ClosedRange<Int>
        /// Just past its last line.
        var endOffset: Int
        /// The digest of the input's bytes before ``endOffset`` (hex), `nil` when it is not known.
        var endDigest: String?
    }

    /// The window's units, in input order.
    let units: [Unit]
    /// Indices into ``units``: tenant by tenant, in the order the tenants first appear, each tenant's in
    /// input order.
    let order: [Int]

    init(_ units: [Unit]) {
        self.units = units
        var tenants: [String] = []
        var indices: [String: [Int]] = [:]
        for (index, unit) in units.enumerated() {
            if indices[unit.tenant] == nil { tenants.append(unit.tenant) }
            indices[unit.tenant, default: []].append(index)
        }
        order = tenants.flatMap { indices[$0] ?? [] }
    }

    /// The appends: ``order`` cut where the tenant changes, as ranges of positions in it.
    var appends: [Range<Int>] {
        var runs: [Range<Int>] = []
        var start = 0
        for position in order.indices.dropFirst() where units[order[position]].tenant != units[order[start]].tenant {
            runs.append(start..<position)
            start = position
        }
        if !order.isEmpty { runs.append(start..<order.count) }
        return runs
    }

    /// The cursor after each unit, in append order (aligned with ``order``): what the store's mark says once
    /// that unit and every one before it in append order are stored, everything before the window being done
    /// (stored, skipped or ignored). `nil` where a digest it needs is not known, or for an input that keeps no
    /// cursor (a pipe): the append then writes the mark before it.
    ///
    /// The first append is the tenant of the window's first unit, so every cursor has a line in the window.
    ///
    /// - Parameters:
    ///   - keepsCursor: Whether the input keeps a cursor (a regular file).
    ///   - inherited: What the run this one resumes stored past its cursor's line, if anything; its ranges
    ///     that are still past the cursor go into each ``InputCursor/beyond``.
    func cursors(keepsCursor: Bool, inherited: InputCursor.Beyond?, inputName: String) -> [InputCursor?] {
        guard keepsCursor else { return Array(repeating: nil, count: order.count) }
        var stored = [Bool](repeating: false, count: units.count)
        // Units 0..<done are all stored.
        var done = 0
        var cursors: [InputCursor?] = []
        cursors.reserveCapacity(order.count)
        for index in order {
            stored[index] = true
            while done < units.count && stored[done] { done += 1 }
            cursors.append(cursor(through: done, stored: stored, inherited: inherited, inputName: inputName))
        }
        return cursors
    }

    /// The cursor once units `0..<done` are stored, and those past them that `stored` says: the last of those
    /// units' line, and the stored units and inherited ranges past it. `nil` when a digest it needs is not known.
    private func cursor(through done: Int, stored: [Bool], inherited: InputCursor.Beyond?, inputName: String)
        -> InputCursor?
    {
        guard done > 0, let digest = units[done - 1].endDigest else { return nil }
        let last = units[done - 1]
        var cursor = InputCursor(
            input: inputName, line: last.lines.upperBound, byteOffset: last.endOffset, digest: digest)
        var lines: [ClosedRange<Int>] = []
        var end: (offset: Int, digest: String?)?
        for later in done..<units.count where stored[later] {
            lines.append(units[later].lines)
            end = (units[later].endOffset, units[later].endDigest)
        }
        if let kept = Self.remaining(inherited, after: cursor.line) {
            lines = (lines + kept.lines).sorted { $0.lowerBound < $1.lowerBound }
            if kept.byteOffset > end?.offset ?? -1 { end = (kept.byteOffset, kept.digest) }
        }
        guard let end else { return cursor }
        guard let endDigest = end.digest else { return nil }
        cursor.beyond = InputCursor.Beyond(lines: lines, byteOffset: end.offset, digest: endDigest)
        return cursor
    }

    /// The ranges of `beyond` still past `line` (all of a range is past it or none is: a cursor's line is the
    /// last line of a unit, never inside another's range), with its offset and digest; `nil` when none is.
    static func remaining(_ beyond: InputCursor.Beyond?, after line: Int) -> InputCursor.Beyond? {
        guard var beyond else { return nil }
        beyond.lines.removeAll { $0.upperBound <= line }
        return beyond.lines.isEmpty ? nil : beyond
    }
}
