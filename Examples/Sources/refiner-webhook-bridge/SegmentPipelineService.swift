import Foundation
import Logging
import RefinerSegment
import ServiceLifecycle

/// Runs the pipeline beside the HTTP server: reports what becomes of recorded messages, and at graceful
/// shutdown drains the pipeline within its grace period.
///
/// Hummingbird shuts its services down in reverse order, the server first, so by the time this one drains
/// the pipeline no webhook is being recorded any more. Messages that fail for good, as they fail, and those
/// still undelivered at the deadline are appended to a JSON Lines file that `refiner-segment send` sends
/// again: Refiner has been answered 200 for them, so it will not.
struct SegmentPipelineService: Service {
    var pipeline: SegmentPipeline
    /// The pipeline's outcomes, subscribed to before the server starts so that none is missed.
    var outcomes: AsyncStream<SegmentOutcome>
    var shutdownSeconds: Double
    var undeliveredFile: String
    var logger: Logger

    func run() async throws {
        async let reported: Void = report(outcomes)
        // The pipeline sends inside run(); a graceful shutdown (SIGTERM, SIGINT) drains it within its grace
        // period, a cancellation of the service group stops it at once.
        try await withGracefulShutdownHandler {
            try await pipeline.run()
        } onGracefulShutdown: { [pipeline, logger, shutdownSeconds] in
            logger.info("Draining the Segment pipeline for up to \(shutdownSeconds) s")
            pipeline.triggerGracefulShutdown()
        }
        await reported  // the outcome stream ends once the pipeline has stopped
        let handedBack = await pipeline.handedBackMessages
        let counters = await pipeline.counters
        logger.notice(
            """
            Segment pipeline shut down: \(counters.delivered) messages delivered, \(counters.failed) failed, \
            \(handedBack.count) handed back undelivered
            """)
        save(handedBack)
    }

    /// Logs retries and failures as they happen, and saves the messages that failed for good.
    private func report(_ outcomes: AsyncStream<SegmentOutcome>) async {
        for await outcome in outcomes {
            switch outcome {
            case .retrying(let messageIDs, let retryCount, let delay, let reason):
                logger.warning("Segment retry \(retryCount) of \(messageIDs.count) messages in \(delay): \(reason)")
            case .failed(let messages, let reason):
                logger.error("Segment failed \(messages.count) messages for good: \(reason)")
                save(messages)
            case .delivered, .handedBack:
                break
            }
        }
    }

    /// Appends the messages to the undelivered file, one JSON object per line, exactly as they were built.
    private func save(_ messages: [SegmentMessage]) {
        guard !messages.isEmpty else { return }
        var lines = Data()
        for message in messages {
            lines.append(contentsOf: message.json)
            lines.append(UInt8(ascii: "\n"))
        }
        let url = URL(fileURLWithPath: undeliveredFile)
        do {
            if !FileManager.default.fileExists(atPath: url.path) {
                _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            }
            let file = try FileHandle(forWritingTo: url)
            defer { try? file.close() }
            try file.seekToEnd()
            try file.write(contentsOf: lines)
            logger.notice("\(messages.count) undelivered messages appended to \(undeliveredFile)")
        } catch {
            logger.critical("Could not save \(messages.count) undelivered messages to \(undeliveredFile): \(error)")
        }
    }
}
