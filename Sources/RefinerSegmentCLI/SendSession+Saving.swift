import RefinerSegment

/// Where undelivered messages go: the failed file, appended as they fail, or standard output once the file
/// cannot be written (`send` does not otherwise use standard output), so that they are never lost.
final class UndeliveredSink: Sendable {
    let path: String
    private let file: any FailedFile
    private let io: ToolIO
    private let state = Locked(State())

    private struct State: Sendable {
        var toFile = 0
        var toOutput = 0
        /// Set when the file failed: from then on everything goes to standard output.
        var isBroken = false
    }

    init(path: String, file: any FailedFile, io: ToolIO) {
        self.path = path
        self.file = file
        self.io = io
    }

    /// How many messages went to the file and to standard output.
    var counts: (file: Int, output: Int) { state.withLock { ($0.toFile, $0.toOutput) } }

    /// Writes units, one record per line (``InputShape/record(of:)``), in one append.
    func save(_ units: [[SegmentMessage]]) {
        let units = units.filter { !$0.isEmpty }
        guard !units.isEmpty else { return }
        var bytes: [UInt8] = []
        for unit in units {
            bytes.append(contentsOf: InputShape.record(of: unit))
            bytes.append(UInt8(ascii: "\n"))
        }
        let count = units.reduce(0) { $0 + $1.count }
        state.withLock { state in
            if !state.isBroken {
                do {
                    try file.append(bytes)
                    state.toFile += count
                    return
                } catch {
                    state.isBroken = true
                    io.writeError(
                        "refiner-segment: \(error); undelivered messages follow on standard output instead\n")
                }
            }
            io.writeOutput(bytes)
            state.toOutput += count
        }
    }

    /// Whether the run re-sends the failed file in place.
    var isInPlace: Bool { file.isInPlace }

    /// Keeps a record that could not be read (in place only: the file it came from is about to be replaced),
    /// as it was.
    func keep(unreadable record: [UInt8]) {
        state.withLock { state in
            guard !state.isBroken else { return }  // the original then stays as it was: nothing is lost
            do {
                try file.append(record + [UInt8(ascii: "\n")])
            } catch {
                state.isBroken = true
                io.writeError("refiner-segment: \(error)\n")
            }
        }
    }

    /// Whether a write to the failed file failed (an in-place re-send then keeps the file as it was).
    var isBroken: Bool { state.withLock { $0.isBroken } }

    /// Ends the failed file (an in-place re-send swaps or keeps it); returns a sentence for the summary.
    func finish(_ input: InputProgress) -> String? {
        do {
            return try file.finish(input)
        } catch {
            return "\(error)"
        }
    }

    /// `"12 undelivered messages written to failed.jsonl"`, or to standard output, or both; nil for none.
    var summary: String? {
        let (toFile, toOutput) = counts
        switch (toFile, toOutput) {
        case (0, 0): return nil
        case (_, 0): return "\(toFile) undelivered messages written to \(path)"
        case (0, _): return "\(toOutput) undelivered messages written to standard output"
        default:
            return
                "\(toFile + toOutput) undelivered messages written: \(toFile) to \(path), \(toOutput) to standard output"
        }
    }
}
