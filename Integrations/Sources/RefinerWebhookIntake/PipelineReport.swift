import Logging
import RefinerSegment
import RefinerSegmentLogging

/// What both example servers do with a pipeline's outcomes: log them through the server's logger, and
/// append the messages that failed for good, or were handed back undelivered, to the undelivered file.
/// Refiner has been answered 200 for them, so it will not send them again.
public struct PipelineReport: Sendable {
    /// Where undelivered messages go.
    public var undelivered: UndeliveredFile
    /// The server's logger.
    public var logger: Logger

    /// Creates the report.
    public init(undelivered: UndeliveredFile, logger: Logger) {
        self.undelivered = undelivered
        self.logger = logger
    }

    /// Reports every outcome until the stream ends, once the pipeline has shut down.
    ///
    /// - Parameters:
    ///   - outcomes: The pipeline's outcomes, subscribed to before the server starts, so none is missed.
    ///   - pipeline: The pipeline, for its endpoint and its final counters.
    public func run(_ outcomes: AsyncStream<SegmentOutcome>, of pipeline: SegmentPipeline) async {
        let log = SegmentPipelineLogger(logger: logger)
        log.logStarted(pipeline)
        for await outcome in outcomes {
            log.log(outcome)
            switch outcome {
            case .failed(let messages, _), .handedBack(let messages):
                save(messages)
            case .delivered, .retrying:
                break
            }
        }
        log.logStopped(await pipeline.counters)
    }

    private func save(_ messages: [SegmentMessage]) {
        do {
            try undelivered.append(messages)
            logger.notice("\(messages.count) undelivered messages appended to \(undelivered.path)")
        } catch {
            logger.critical("Could not save \(messages.count) undelivered messages: \(error)")
        }
    }
}
