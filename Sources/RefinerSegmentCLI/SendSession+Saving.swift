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
        /// Messages that reached neither the file nor standard output (both failed).
        var lost = 0
        /// Set when the file failed: from then on everything goes to standard output.
        var isBroken = false
    }

    init(path: String, file: any FailedFile, io: ToolIO) {
        self.path = path
        self.file = file
        self.io = io
    }

    /// How many messages went to the file and to standard output, or were lost.
    var counts: (file: Int, output: Int) { state.withLock { ($0.toFile, $0.toOutput + $0.lost) } }

    /// Writes units, one record per line (``InputShape/record(of:)``), in one append; false when they reached
    /// neither the file nor standard output.
    @discardableResult
    func save(_ units: [[SegmentMessage]]) -> Bool {
        let units = units.filter { !$0.isEmpty }
        guard !units.isEmpty else { return true }
        var bytes: [UInt8] = []
        for unit in units {
            bytes.append(contentsOf: InputShape.record(of: unit))
            bytes.append(UInt8(ascii: "\n"))
        }
        let count = units.reduce(0) { $0 + $1.count }
        return state.withLock { state in
            if !state.isBroken {
                do {
                    try file.append(bytes)
                    state.toFile += count
                    return true
                } catch {
                    state.isBroken = true
                    io.writeError(
                        "refiner-segment: \(error); undelivered messages follow on standard output instead\n")
                }
            }
            io.writeOutput(bytes)
            if io.outputIsBroken() {
                state.lost += count
                io.writeError("refiner-segment: \(count) undelivered messages could not be written anywhere\n")
                return false
            }
            state.toOutput += count
            return true
        }
    }

    /// How many undelivered messages reached neither the failed file nor standard output.
    var lost: Int { state.withLock { $0.lost } }

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
        let (toFile, toOutput, lost) = state.withLock { ($0.toFile, $0.toOutput, $0.lost) }
        var parts: [String] = []
        switch (toFile, toOutput) {
        case (0, 0): break
        case (_, 0): parts.append("\(toFile) undelivered messages written to \(path)")
        case (0, _): parts.append("\(toOutput) undelivered messages written to standard output")
        default:
            parts.append(
                "\(toFile + toOutput) undelivered messages written: \(toFile) to \(path), \(toOutput) to standard output"
            )
        }
        if lost > 0 { parts.append("\(lost) undelivered messages could not be written anywhere") }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}
