import RefinerSegment

/// The digest of the input up to each line end that the reader may still hand out, for ``InputCursor``:
/// ``TrackedSource`` feeds it as bytes pass, and `send --store` asks it when a unit is recorded.
final class InputTracker: Sendable {
    private let state = Locked(State())

    private struct State: Sendable {
        var digest = InputDigest()
        var bytes = 0
        /// The end offset of each line break seen in the last two chunks, with the digest through it.
        var ends: [(end: Int, digest: InputDigest)] = []
        var previousChunkStart = 0
    }

    /// Takes the next chunk in.
    func add(_ chunk: [UInt8]) {
        state.withLock { state in
            // A record handed out now ends in this chunk or, at most, the one before (a line split across two).
            if let keep = state.ends.firstIndex(where: { $0.end >= state.previousChunkStart }) {
                state.ends.removeFirst(keep)
            } else {
                state.ends.removeAll(keepingCapacity: true)
            }
            state.previousChunkStart = state.bytes
            for byte in chunk {
                state.digest.add(byte)
                state.bytes += 1
                if byte == UInt8(ascii: "\n") { state.ends.append((state.bytes, state.digest)) }
            }
        }
    }

    /// The input ended: a last line without a line break ends here.
    func end() {
        state.withLock { state in
            if state.bytes > (state.ends.last?.end ?? 0) { state.ends.append((state.bytes, state.digest)) }
        }
    }

    /// The digest of the bytes before `offset`, when `offset` is a line end seen lately.
    func digest(through offset: Int) -> InputDigest? {
        state.withLock { state in
            if offset == 0 { return InputDigest() }
            // The ends are in increasing order: a binary search.
            var (low, high) = (0, state.ends.count)
            while low < high {
                let middle = (low + high) / 2
                if state.ends[middle].end < offset { low = middle + 1 } else { high = middle }
            }
            return low < state.ends.count && state.ends[low].end == offset ? state.ends[low].digest : nil
        }
    }
}

/// A byte source that shows every chunk to an ``InputTracker`` on its way to the reader.
struct TrackedSource: ByteSource {
    var base: any ByteSource
    let tracker: InputTracker

    mutating func read() throws -> [UInt8] {
        let chunk = try base.read()
        if chunk.isEmpty { tracker.end() } else { tracker.add(chunk) }
        return chunk
    }

    func isReady() -> Bool { base.isReady() }
    var byteCount: Int? { base.byteCount }
    var fileIdentity: FileIdentity? { base.fileIdentity }
}
