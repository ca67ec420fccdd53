import Foundation
import RefinerSegment
import RefinerSegmentURLSession

/// One run of `refiner-segment send`: reads records, records their messages in a pipeline, reports progress,
/// and keeps every message it read and did not deliver in the failed file.
///
/// Its parts run side by side in one task group: the reading loop (``read()``), the outcome reporter (which
/// appends failures to the failed file as they happen) and the signal watcher (``StopPolicy``). The
/// ``SendLedger`` holds every message read and not yet settled, so whatever stops the run, what is left is
/// known and written out.
final class SendSession: Sendable {
    /// How long `send` keeps delivering after a stop signal before it hands the rest to the failed file.
    static let interruptionGrace: Duration = .seconds(1)

    let io: ToolIO
    let options: SendOptions
    let pipeline: SegmentPipeline
    /// Every unit read and not settled; with a store, only until the store accepts it.
    let ledger: SendLedger
    let undelivered: UndeliveredSink
    /// `--store DIR`: the durable store and the input cursor; `nil` keeps messages in memory.
    let storeMode: StoreMode?
    /// The signals received and what they meant.
    let stop = Locked(StopState())
    /// How far the input has been read, for the progress bar.
    let reading: Locked<SendProgress.Reading>
    let progress: Locked<SendProgress>

    struct StopState: Sendable {
        var policy = StopPolicy()
        /// The first stop signal's number.
        var signal: Int32?
    }

    /// What the reading loop found.
    struct ReadSummary {
        var lines = 0
        var skipped = 0
        var ignored = 0
        var lastLine = 0
        var readFailed = false
        var bytesConsumed = 0
        /// A record was skipped whose bytes could not be kept (too long, a broken pretty-printed document).
        var lostUnreadable = false
        /// Records an earlier run accepted (`--store`), read again and not recorded.
        var covered = 0
        /// The store could not take a unit (`--store`: a full disk, an I/O error): reading stopped there, and
        /// what was read and not stored is after the cursor (a file) or goes to the failed file (a pipe).
        var storeFailed = false

        /// Whether a record that could not be stored is skipped: only when it is the input's own fault (too
        /// large for a message or a batch). Any other failure (the store's) stops the reading instead, so
        /// the unit is not lost: a skipped unit is counted done, and the next append's cursor passes it.
        static func isSkippable(_ error: any Error) -> Bool {
            guard let code = (error as? SegmentDeliveryError)?.code else { return false }
            return code == .messageTooLarge || code == .unitTooLarge
        }

        /// Reports a store failure and stops the reading: `location` is the first unit not stored.
        mutating func stopOnStoreFailure(_ error: any Error, at location: String, keepsCursor: Bool, io: ToolIO) {
            let rest =
                keepsCursor
                ? "the next send --store with this input reads it again from there"
                : "what was read and not stored goes to the failed file; the rest of the input was not read"
            io.writeError("refiner-segment: \(error); reading stopped at \(location), which was not stored: \(rest)\n")
            storeFailed = true
            readFailed = true
        }

        /// What one read from the input gave.
        enum Step {
            /// The input ended, or could not be read further (reported; `readFailed` set).
            case end
            /// A line with nothing to send: blank, or a record that could not be read (reported, counted).
            case passed
            /// A record to decode, with the lines it spans.
            case record(lines: ClosedRange<Int>, bytes: [UInt8])
        }

        /// Reads one item from `reader`, reporting and counting what cannot be read. One item a call, so the
        /// caller can record what is pending before a read that would wait on a live pipe.
        mutating func step(_ reader: inout RecordReader, io: ToolIO) -> Step {
            let next: InputRecord?
            do {
                next = try reader.next()
            } catch {
                // What was read is still delivered (or goes to the failed file); only the reading stops.
                io.writeError("refiner-segment: \(error); input read up to line \(lastLine)\n")
                readFailed = true
                return .end
            }
            guard let item = next else { return .end }
            if let problem = item.problem {
                lines += 1
                lastLine = item.lines.upperBound
                skipped += 1
                // Its bytes are gone: an in-place re-send must not replace the file it came from.
                lostUnreadable = true
                io.writeError("\(problem.location): skipped: \(problem.reason)\n")
                return .passed
            }
            guard case .record(let span, let bytes) = item else { return .passed }
            lastLine = span.upperBound
            if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return .passed }
            lines += 1
            return .record(lines: span, bytes: bytes)
        }
    }

    init(io: ToolIO, options: SendOptions, transport: some SegmentTransport, input: any ByteSource) throws {
        self.io = io
        self.options = options
        // The settings are checked first: before the failed file is looked at, and the store's directory made
        // and locked.
        do {
            _ = try SegmentPipeline(writeKey: options.writeKey, transport: transport, configuration: options.pipeline)
        } catch {
            throw UsageError(error.detail)
        }
        let file = try io.openFailedFile(options.failedPath, input.fileIdentity)
        if file.isInPlace, options.storePath != nil { throw UsageError(Self.inPlaceWithStore(options.failedPath)) }
        let undelivered = UndeliveredSink(path: options.failedPath, file: file, io: io)
        self.undelivered = undelivered
        ledger = SendLedger(keepsAccepted: options.storePath == nil)
        storeMode = try options.storePath.map { directory in
            try StoreMode(
                directory: directory, undelivered: undelivered, input: input,
                inputName: options.inputPath ?? "standard input")
        }
        do {
            pipeline = try SegmentPipeline(
                writeKey: options.writeKey, transport: transport, configuration: options.pipeline,
                store: storeMode?.store)
        } catch {
            throw UsageError(error.detail)
        }
        reading = Locked(SendProgress.Reading(bytesRead: 0, byteCount: input.byteCount))
        progress = Locked(SendProgress(io: io))
    }

    /// Why `--store` does not take the failed file as its input (Docs/Delivery.md, "send --store DIR").
    ///
    /// In place, what fails for good goes to a fresh file that replaces the failed file only at the end,
    /// while the store settles those messages at once and the cursor moves past their lines: a stop in
    /// between would leave them in neither the store, nor the failed file, nor after the cursor.
    static func inPlaceWithStore(_ path: String) -> String {
        "--store cannot re-send the failed file '\(path)' in place (what fails for good would be settled out of "
            + "the store before the file that keeps it replaces '\(path)', and a stop in between loses it): move "
            + "it first (mv \(path) retry.jsonl) and send retry.jsonl with --store, or re-send it without --store"
    }

    /// Runs the session to its end and returns the exit status.
    func run(_ input: any ByteSource) async -> Int32 {
        // Every failed outcome carries messages for the failed file: the stream may not drop any.
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let interruptions = io.interruptions()
        return await withTaskGroup(of: Void.self, returning: Int32.self) { group in
            // The watcher lives until the very end, so that a signal during the final writing is still handled.
            group.addTask { await self.watch(interruptions) }
            await storeMode?.announce(tenant: pipeline.tenant, io: io)
            async let running: Void = runPipeline()
            async let reported: Void = report(outcomes)
            var summary = await read(storeMode?.tracked(input) ?? input)
            if stopSignal == nil {
                // After the recovery: a flush before it would not wait for what the store held (a drain with
                // /dev/null, a re-run whose input was all accepted before).
                await pipeline.flushAfterRecovery()
            }
            pipeline.triggerGracefulShutdown()
            await running
            await reported  // the outcome stream ends when the pipeline stops
            summary.bytesConsumed = reading.withLock { $0.bytesRead }
            let stored = await storeMode?.end(
                tenant: pipeline.tenant, inputComplete: stopSignal == nil && !summary.readFailed)
            let status = finish(summary, counters: await pipeline.counters, stored: stored)
            group.cancelAll()
            return status
        }
    }

    /// Runs the pipeline until its graceful shutdown (with ``interruptionGrace`` after a stop signal) ends.
    private func runPipeline() async {
        do {
            try await pipeline.run()
        } catch {
            io.writeError("refiner-segment: \(error)\n")
        }
    }

    /// The first stop signal, if any.
    var stopSignal: Int32? { stop.withLock { $0.signal } }

    /// Reports outcomes as they come and appends failed messages to the failed file at once.
    private func report(_ outcomes: AsyncStream<SegmentOutcome>) async {
        for await outcome in outcomes {
            let accepted = await pipeline.counters.accepted
            let reading = self.reading.withLock { $0 }
            progress.withLock { $0.record(outcome, accepted: accepted, reading: reading) }
            switch outcome {
            case .delivered(let messageIDs, _): ledger.settleDelivered(messageIDs)
            case .failed(let messages, let reason) where storeMode != nil:
                // The store wrote them to the failed file before it settled them (``SendStore``).
                _ = ledger.settleFailed(messages)
                if messages.isEmpty { io.writeError("refiner-segment: \(reason)\n") }
            case .failed(let messages, _): undelivered.save(ledger.settleFailed(messages))
            case .retrying, .handedBack: break  // handed-back messages stay in the ledger until the end
            }
        }
    }

    /// Writes what is left, prints the summary and returns the exit status.
    private func finish(_ summary: ReadSummary, counters: SegmentPipeline.Counters, stored: (left: Int, note: String?)?)
        -> Int32
    {
        progress.withLock { $0.finish() }
        let taken = ledger.takeAll()
        let (units, notAccepted) = (taken.units, taken.notAccepted)
        // With a store, what is left stays there, and what was read but not accepted is after the cursor (or,
        // from a pipe, in the failed file).
        undelivered.save(taken.forFailedFile(storeMode))
        let signal = stopSignal
        // An in-place re-send replaces the failed file only when everything it held is accounted for.
        let isComplete =
            signal == nil && !summary.readFailed && !summary.lostUnreadable && !undelivered.isBroken
        let note = undelivered.finish(InputProgress(isComplete: isComplete, bytesConsumed: summary.bytesConsumed))
        var text =
            "refiner-segment: \(summary.lines - summary.skipped) of \(summary.lines) lines read, "
            + "\(counters.accepted) messages: \(counters.delivered) delivered, \(counters.failed) failed, "
            + "\(counters.retries) retries"
        let handedBack = units.reduce(0) { $0 + $1.count } - notAccepted
        if handedBack > 0, storeMode == nil { text += ", \(handedBack) not sent" }
        if notAccepted > 0 { text += ", \(notAccepted) read but not queued" }
        if summary.covered > 0 { text += "; \(summary.covered) lines accepted by an earlier run were not sent again" }
        if let note = stored?.note { text += "; " + note }
        if summary.ignored > 0 { text += "; \(summary.ignored) webhooks of other events ignored" }
        if let written = undelivered.summary { text += "; " + written }
        if let note { text += "; " + note }
        if let signal {
            text +=
                "; stopped by \(SignalListener.name(of: signal)) after input line \(summary.lastLine): later lines "
                + "were not read"
        }
        io.writeError(text + "\n")
        if undelivered.lost > 0 { return RefinerSegmentTool.abandoned }
        if let signal { return 128 + signal }
        let (toFile, toOutput) = undelivered.counts
        // With a store, messages left in it (or a store call that failed) are not delivered either, as with
        // `--tenants`.
        let allDelivered = toFile + toOutput == 0 && (stored?.left ?? 0) == 0 && counters.storeFailures == 0
        return summary.skipped == 0 && !summary.readFailed && allDelivered
            ? RefinerSegmentTool.success : RefinerSegmentTool.failure
    }
}
