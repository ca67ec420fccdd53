import RefinerSegment
import RefinerSegmentFileStore

extension RefinerSegmentTool {
    /// `render [FILE]`: responses in, every Segment message out, one per line, in sending order.
    ///
    /// Records are responses in their JSON form or Refiner webhook payloads, told apart by their shape
    /// (``InputShape``, the decoder `send` uses too), one per line or pretty-printed (``RecordReader``).
    /// A webhook about another event than `Completed Survey` is noted on stderr as ignored and does not
    /// change the exit status: it is not bad input, there is just nothing to render for it.
    ///
    /// A profile store runs across lines, so a user's and an account's traits accumulate as they would in a
    /// host: in memory, or with `--profiles FILE` in a ``FileProfileStore`` (kept across runs, so a backfill
    /// split over several runs prints what one run would, and memory does not grow with the number of
    /// distinct users). Deterministic: the same input prints the same bytes.
    ///
    /// Reading and decoding run ahead on a thread of their own where there is more than one processor
    /// (``RenderStages``); `stages` is for tests.
    func render(_ arguments: [String], stages: RenderStages = .automatic) throws -> Int32 {
        let options = try Options(arguments, valued: ["--prefix", "--max-length", "--profiles"], flags: ["--track"])
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
        let reading = RenderReading(reader: RecordReader(source: try io.openInput(options.positional.first)))
        var profiles = try CollectedProfiles.open(options.values["--profiles"], io: io)
        defer { profiles.close() }
        var output = OutputBuffer(write: io.writeOutput)
        var rejected = 0
        var accepted = 0
        var ignored = 0
        try stages.forEachStep(of: reading) { (step: consuming RenderStep) in
            switch consume step {
            case .blank:
                return
            case .unreadable(let location, let reason):
                io.writeError("\(location): skipped: \(reason)\n")
                rejected += 1
            case .inputFailed(let error):
                // What the records before it made is printed: they were read and rendered.
                output.flush()
                throw error
            case .notResponse(let lines, let error) where error.code == .unhandledEvent:
                // A webhook about something else than a completed survey: nothing to render, nothing wrong.
                io.writeError("\(InputRecord.location(lines)): ignored: \(error)\n")
                ignored += 1
            case .notResponse(let lines, let error):
                io.writeError("\(InputRecord.location(lines)): skipped: \(error)\n")
                rejected += 1
            case .response(let lines, let response):
                do {
                    for message in try profiles.process(response, with: builder) { output.appendLine(message.json) }
                    accepted += 1
                } catch let error as RefinerSegmentError where error.code == .unhandledEvent {
                    io.writeError("\(InputRecord.location(lines)): ignored: \(error)\n")
                    ignored += 1
                } catch {
                    io.writeError("\(InputRecord.location(lines)): skipped: \(error)\n")
                    rejected += 1
                }
            }
        }
        output.flush()
        if rejected > 0 {
            io.writeError("refiner-segment: \(rejected) of \(rejected + accepted + ignored) lines skipped\n")
            return Self.failure
        }
        return Self.success
    }
}

extension RefinerSegmentTool {
    /// `render` without the asynchronous entry point, for the benchmark's instruction counts: valgrind cannot
    /// follow the concurrency runtime's worker threads, which ``run(_:)`` runs on. `arguments` include the
    /// command name, as for ``run(_:)``.
    @_spi(Benchmark) public func renderSynchronously(_ arguments: [String]) -> Int32 {
        do {
            return try render(Array(arguments.dropFirst()))
        } catch {
            io.writeError("refiner-segment: \(error)\n")
            return Self.failure
        }
    }
}
