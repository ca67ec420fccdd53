import Foundation
import RefinerSegment
import RefinerSegmentURLSession

extension RefinerSegmentTool {
    /// The default file for messages that failed for good.
    static let defaultFailedFile = "refiner-segment-failed.jsonl"
    /// How long `send` keeps delivering after SIGINT or SIGTERM before it hands the rest to the failed file.
    static let interruptionGrace: TimeInterval = 1

    /// `send [FILE]`: responses (or already-built Segment messages) in, delivered to Segment in batches.
    ///
    /// The write key comes from `SEGMENT_WRITE_KEY` only. Progress goes to stderr; messages that failed for
    /// good go to the failed file as JSON Lines, ready to be sent again with `send`. The exit status is 0 only
    /// when every line was read and every message delivered.
    ///
    /// On SIGINT or SIGTERM (``ToolIO/interruptions``) it stops reading, keeps delivering for
    /// ``interruptionGrace``, writes every message read but not delivered (failed, handed back by the
    /// pipeline, or not yet queued) to the failed file and returns 128 + the signal number (130, 143).
    func send(_ arguments: [String]) async throws -> Int32 {
        let options = try Options(
            arguments, valued: ["--region", "--endpoint", "--failed", "--prefix", "--max-length"], flags: ["--track"])
        guard options.positional.count <= 1 else { throw UsageError("send takes at most one FILE") }
        guard let key = io.environment["SEGMENT_WRITE_KEY"], !key.isEmpty else {
            throw UsageError("set SEGMENT_WRITE_KEY to the source's write key (it is never read from an argument)")
        }
        var configuration = SegmentPipeline.Configuration()
        configuration.endpoint = try options.endpoint()
        configuration.shutdownGracePeriod = .seconds(Self.interruptionGrace)
        let failedPath = options.values["--failed"] ?? Self.defaultFailedFile
        let builder = try options.callBuilder()
        let pipeline: SegmentPipeline
        do {
            pipeline = try SegmentPipeline(
                writeKey: WriteKey(key), transport: URLSessionTransport(), configuration: configuration)
        } catch {
            throw UsageError(error.detail)
        }

        var reader = RecordReader(source: try io.openInput(options.positional.first))
        // Every failed outcome carries messages that go to the failed file: the stream may not drop any.
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = Task { try await pipeline.run() }
        let reporter = Task { [io] in
            var progress = SendProgress(io: io)
            for await outcome in outcomes {
                progress.accepted = await pipeline.counters.accepted
                progress.record(outcome)
            }
            return progress
        }

        // SIGINT or SIGTERM: stop reading, give the pipeline a short grace to deliver what is in flight, and
        // write everything undelivered to the failed file, so that sending that file finishes the job.
        let interruption = Interruption()
        let interruptions = io.interruptions()
        let watcher = Task { [io] in
            for await number in interruptions {
                interruption.signal = number
                io.writeError(
                    "refiner-segment: \(Interruption.name(of: number)) received: stopping; undelivered "
                        + "messages go to \(failedPath)\n")
                pipeline.triggerGracefulShutdown()
                return
            }
        }

        var store = InMemoryProfileStore()
        var skipped = 0
        var ignored = 0
        var lines = 0
        var lastLine = 0
        // Messages read but not accepted because the pipeline stopped on a signal: they go to the failed file.
        var notRecorded: [SegmentMessage] = []
        // An already-built identify waits for the next line: when that is its group, they go as one unit, as
        // the builder's pairs do (a failed file lists them one per line).
        var pendingIdentify: (location: String, message: SegmentMessage, userID: String?)?
        /// Records a unit; false when the pipeline has stopped on a signal (the unit is kept for the failed
        /// file).
        func accept(_ messages: [SegmentMessage]) async throws -> Bool {
            do {
                try await pipeline.record(messages)
                return true
            } catch {
                guard (error as? SegmentDeliveryError)?.code == .shutDown, interruption.signal != nil else {
                    throw error
                }
                notRecorded.append(contentsOf: messages)
                return false
            }
        }
        func recordPending() async -> Bool {
            guard let pending = pendingIdentify else { return true }
            pendingIdentify = nil
            do {
                return try await accept([pending.message])
            } catch {
                skipped += 1
                io.writeError("\(pending.location): skipped: \(error)\n")
                return true
            }
        }
        var readFailed = false
        reading: while interruption.signal == nil {
            let next: InputRecord?
            do {
                next = try reader.next()
            } catch {
                // What was read is still delivered (or goes to the failed file); only the reading stops.
                io.writeError("refiner-segment: \(error); input read up to line \(lastLine)\n")
                readFailed = true
                break
            }
            guard let record = next else { break }
            if let problem = record.problem {
                lines += 1
                lastLine = record.lines.upperBound
                skipped += 1
                io.writeError("\(problem.location): skipped: \(problem.reason)\n")
                continue
            }
            switch record {
            case .tooLong, .unterminated, .interrupted:
                continue  // reported above
            case .record(let span, let bytes):
                lastLine = span.upperBound
                if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
                lines += 1
                let location = InputRecord.location(span)
                do {
                    var messages = try SendInput.messages(fromLine: bytes, store: &store, builder: builder)
                    if messages.count == 1, messages[0].kind == .group, let pending = pendingIdentify,
                        pending.userID != nil, pending.userID == SendInput.userID(of: messages[0])
                    {
                        messages.insert(pending.message, at: 0)
                        pendingIdentify = nil
                    }
                    guard await recordPending() else {
                        notRecorded.append(contentsOf: messages)
                        break reading
                    }
                    if messages.count == 1, messages[0].kind == .identify {
                        pendingIdentify = (location, messages[0], SendInput.userID(of: messages[0]))
                        continue
                    }
                    guard try await accept(messages) else { break reading }
                } catch let error as RefinerSegmentError where error.code == .unhandledEvent {
                    // A webhook about something else than a completed survey: nothing to send, nothing wrong.
                    io.writeError("\(location): ignored: \(error)\n")
                    ignored += 1
                } catch {
                    skipped += 1
                    io.writeError("\(location): skipped: \(error)\n")
                }
            }
        }
        if interruption.signal == nil {
            _ = await recordPending()
            await pipeline.flush()
        }
        if let pending = pendingIdentify { notRecorded.append(pending.message) }
        // After a signal, the watcher's shutdown (with its grace) comes first; this one then changes nothing.
        if interruption.signal != nil { await watcher.value }
        pipeline.triggerGracefulShutdown()
        _ = await running.result
        let handedBack = await pipeline.handedBackMessages
        watcher.cancel()
        await watcher.value
        var progress = await reporter.value
        progress.finish()

        let undelivered = progress.failedMessages + handedBack + notRecorded
        var failedDestination = failedPath
        if !undelivered.isEmpty {
            var bytes: [UInt8] = []
            for message in undelivered {
                bytes.append(contentsOf: message.json)
                bytes.append(UInt8(ascii: "\n"))
            }
            do {
                try io.writeFile(failedPath, bytes)
            } catch {
                // The messages exist nowhere else now: rather than lose them, put them on standard output (which
                // send does not otherwise use), where the operator can save them.
                io.writeError(
                    "refiner-segment: \(error); the \(undelivered.count) undelivered messages follow on "
                        + "standard output instead\n")
                io.writeOutput(bytes)
                failedDestination = "standard output"
            }
        }
        let counters = await pipeline.counters
        var summary =
            "refiner-segment: \(lines - skipped) of \(lines) lines read, \(counters.accepted) messages: "
            + "\(counters.delivered) delivered, \(counters.failed) failed, \(counters.retries) retries"
        if counters.handedBack > 0 { summary += ", \(counters.handedBack) not sent" }
        if !notRecorded.isEmpty { summary += ", \(notRecorded.count) read but not queued" }
        if ignored > 0 { summary += "; \(ignored) webhooks of other events ignored" }
        if !undelivered.isEmpty {
            summary += "; \(undelivered.count) undelivered messages written to \(failedDestination)"
        }
        if let number = interruption.signal {
            summary +=
                "; stopped by \(Interruption.name(of: number)) after input line \(lastLine): later lines "
                + "were not read"
        }
        io.writeError(summary + "\n")
        if let number = interruption.signal { return 128 + number }
        return skipped == 0 && !readFailed && undelivered.isEmpty ? Self.success : Self.failure
    }
}

/// Whether `send` was asked to stop, and by which signal; set by the signal watcher, read by the reading
/// loop. An `NSLock` guards the value, which is why the type may be `@unchecked Sendable`.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var _signal: Int32?

    /// The first signal received, if any.
    var signal: Int32? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return _signal
        }
        set {
            lock.lock()
            defer { lock.unlock() }
            if _signal == nil { _signal = newValue }
        }
    }

    static func name(of number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }
}

/// How `send` reads a line: each input shape it accepts, recognised by the line's top-level fields.
///
/// To accept one more shape, add a row to ``shapes`` (before the catch-all response form).
enum SendInput {
    struct Shape: Sendable {
        /// Whether a line with these top-level fields has this shape.
        var recognizes: @Sendable (_ fields: Set<String>) -> Bool
        /// The line's messages: one unit that travels in one batch.
        var decode:
            @Sendable (_ line: [UInt8], _ store: inout InMemoryProfileStore, _ builder: SegmentCallBuilder) throws
                -> [SegmentMessage]
    }

    /// The shapes, tried in order.
    static let shapes: [Shape] = [
        // An already-built Segment message (render's output, a failed file): validated, passed through unchanged.
        Shape(
            recognizes: { $0.contains("type") && $0.contains("messageId") },
            decode: { line, _, _ in [try SegmentMessage(json: line)] }
        ),
        // A Refiner webhook payload ("Completed Survey"); other events are reported as ignored.
        Shape(
            recognizes: { $0.contains("triggered_event") || ($0.contains("response") && $0.contains("form")) },
            decode: { line, store, builder in
                try store.process(try SurveyResponse(refinerWebhook: line), with: builder)
            }
        ),
        // The response form of the specification (the catch-all, so its errors name the missing fields).
        Shape(
            recognizes: { _ in true },
            decode: { line, store, builder in try store.process(try SurveyResponse(json: line), with: builder) }
        ),
    ]

    static func messages(
        fromLine line: [UInt8],
        store: inout InMemoryProfileStore,
        builder: SegmentCallBuilder
    ) throws -> [SegmentMessage] {
        guard UTF8Validation.isValid(line) else {
            throw RefinerSegmentError(code: .invalidInput, detail: "not valid UTF-8")
        }
        let fields = (try? JSONDecoder().decode(TopLevelFields.self, from: Data(line)))?.names ?? []
        let shape = shapes.first { $0.recognizes(fields) } ?? shapes[shapes.count - 1]
        return try shape.decode(line, &store, builder)
    }

    /// The `userId` of an already-built message, to pair an identify with the group that follows it.
    static func userID(of message: SegmentMessage) -> String? {
        (try? JSONDecoder().decode(UserIDField.self, from: Data(message.json)))?.userId
    }

    private struct UserIDField: Decodable {
        var userId: String?
    }

    /// The names of a JSON object's members.
    private struct TopLevelFields: Decodable {
        var names: Set<String>

        private struct Name: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            names = Set(try decoder.container(keyedBy: Name.self).allKeys.map(\.stringValue))
        }
    }
}

/// What `send` shows on stderr while it runs, and the failed messages it collects.
struct SendProgress {
    let io: ToolIO
    var accepted = 0
    var delivered = 0
    var failed = 0
    var retries = 0
    var handedBack = 0
    var failedMessages: [SegmentMessage] = []
    private var drewBar = false

    init(io: ToolIO) {
        self.io = io
    }

    mutating func record(_ outcome: SegmentOutcome) {
        switch outcome {
        case .delivered(let messageIDs, _):
            delivered += messageIDs.count
            line("delivered \(messageIDs.count) messages")
        case .retrying(let messageIDs, let retryCount, let delay, let reason):
            retries += 1
            line("retry \(retryCount) of \(messageIDs.count) messages in \(Self.seconds(delay)): \(reason)")
        case .failed(let messages, let reason):
            failed += messages.count
            failedMessages.append(contentsOf: messages)
            line("failed \(messages.count) messages: \(reason)")
        case .handedBack(let messages):
            handedBack += messages.count
        }
    }

    /// Ends the bar's line, so the summary starts on a line of its own.
    mutating func finish() {
        if drewBar { io.writeError("\n") }
        drewBar = false
    }

    /// A plain line for a log, or the bar redrawn in place on a terminal.
    private mutating func line(_ event: String) {
        let totals = "accepted \(accepted), delivered \(delivered), retried \(retries), failed \(failed)"
        guard io.errorIsTerminal else {
            io.writeError("refiner-segment: \(event) (\(totals))\n")
            return
        }
        let done = delivered + failed
        let width = 24
        let filled = done == 0 ? 0 : min(width, width * delivered / max(done, 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        io.writeError("\r\u{1B}[2K[\(bar)] \(totals)")
        drewBar = true
    }

    private static func seconds(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        return seconds < 10 ? String(format: "%.1f s", seconds) : "\(Int(seconds.rounded())) s"
    }
}

extension Options {
    /// The endpoint from `--region us|eu` or `--endpoint URL` (not both); the US region by default.
    func endpoint() throws -> SegmentEndpoint {
        switch (values["--region"], values["--endpoint"]) {
        case (.some, .some):
            throw UsageError("give --region or --endpoint, not both")
        case (let region?, nil):
            guard let endpoint = SegmentEndpoint(region: region) else {
                throw UsageError("--region takes us or eu, not '\(region)'")
            }
            return endpoint
        case (nil, let text?):
            guard let url = URL(string: text), url.scheme != nil, url.host != nil else {
                throw UsageError("--endpoint takes a URL such as https://api.segment.io, not '\(text)'")
            }
            return SegmentEndpoint(baseURL: url)
        case (nil, nil):
            return .us
        }
    }

    /// The call builder from `--prefix`, `--max-length` and `--track`.
    func callBuilder() throws -> SegmentCallBuilder {
        var configuration = SegmentCallBuilder.Configuration()
        configuration.traitKeys = try traitKeyConfiguration()
        configuration.sendsCompletedSurveyEvent = flags.contains("--track")
        do {
            return try SegmentCallBuilder(configuration: configuration)
        } catch {
            throw UsageError(error.detail)
        }
    }
}
