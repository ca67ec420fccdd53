import RefinerSegment

extension RefinerSegmentTool {
    /// `render [FILE]`: responses in, every Segment message out, one per line, in sending order.
    ///
    /// An in-memory profile store runs across lines, so a user's and an account's traits accumulate as they
    /// would in a host. Deterministic: the same input prints the same bytes.
    func render(_ arguments: [String]) throws -> Int32 {
        let options = try Options(arguments, valued: ["--prefix", "--max-length"], flags: ["--track"])
        guard options.positional.count <= 1 else { throw UsageError("render takes at most one FILE") }
        var configuration = SegmentCallBuilder.Configuration()
        configuration.traitKeys = try options.traitKeyConfiguration()
        configuration.sendsCompletedSurveyEvent = options.flags.contains("--track")
        let builder: SegmentCallBuilder
        do {
            builder = try SegmentCallBuilder(configuration: configuration)
        } catch {
            throw UsageError(error.detail)
        }
        var reader = LineReader(source: try io.openInput(options.positional.first))
        var store = InMemoryProfileStore()
        var output = OutputBuffer(write: io.writeOutput)
        var rejected = 0
        var accepted = 0
        while let line = try reader.next() {
            switch line {
            case .tooLong(let number, let byteCount):
                io.writeError("line \(number): skipped: \(byteCount) bytes, longer than "
                    + "\(LineReader.maximumLineBytes)\n")
                rejected += 1
            case .line(let number, let bytes):
                if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
                do {
                    guard String(validating: bytes, as: UTF8.self) != nil else {
                        throw RefinerSegmentError(code: .invalidInput, detail: "not valid UTF-8")
                    }
                    let response = try SurveyResponse(json: bytes)
                    for message in try store.process(response, with: builder) { output.appendLine(message.json) }
                    accepted += 1
                } catch {
                    io.writeError("line \(number): skipped: \(error)\n")
                    rejected += 1
                }
            }
        }
        output.flush()
        if rejected > 0 {
            io.writeError("refiner-segment: \(rejected) of \(rejected + accepted) lines skipped\n")
            return Self.failure
        }
        return Self.success
    }
}
