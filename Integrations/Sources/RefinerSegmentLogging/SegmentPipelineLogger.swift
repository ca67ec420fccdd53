import Logging
import RefinerSegment

/// Logs what a ``SegmentPipeline`` does through the host's swift-log `Logger`: each outcome, and when the
/// pipeline's logging starts and stops.
///
/// ```swift
/// let outcomes = await pipeline.outcomes()     // subscribe before the first record
/// async let logged: Void = SegmentPipelineLogger(logger: logger).log(outcomes, of: pipeline)
/// ```
///
/// It never makes a logger and never changes the logger's level: the host decides where logs go and how
/// much of them it keeps. Levels follow swift-log's guidance for libraries:
///
/// | Event | Level |
/// | --- | --- |
/// | a batch delivered | `debug` |
/// | an attempt failed and will be retried | `debug` |
/// | messages failed for good (refused, or out of retries) | `warning` |
/// | messages handed back undelivered at shutdown | `info` |
/// | logging started, the pipeline stopped (with its counters) | `info` |
///
/// Metadata keys start with `refiner_segment.`. The write key is never logged: the pipeline's
/// description names the endpoint only, and failure reasons have the key redacted before they reach an
/// outcome. Message contents (traits, emails) are never logged either; failed messages are named by their
/// `messageId`s, which derive from Refiner's response ids.
public struct SegmentPipelineLogger: Sendable {
    /// The host's logger.
    public var logger: Logger
    /// A name for the pipeline's tenant, added as `refiner_segment.tenant` when set; never its write key.
    public var tenant: String?

    /// The most `messageId`s one failure lists; the count is always complete.
    public static let maximumListedMessageIDs = 10

    /// Creates a logger for a pipeline's events.
    ///
    /// - Parameters:
    ///   - logger: The host's logger; its level decides what is kept.
    ///   - tenant: A name that tells this pipeline's lines apart when a process runs many.
    public init(logger: Logger, tenant: String? = nil) {
        self.logger = logger
        self.tenant = tenant
    }

    /// Logs every outcome until the stream ends (when the pipeline has shut down), then the pipeline's
    /// counters.
    ///
    /// Subscribe with `pipeline.outcomes()` before recording into the pipeline, so that no outcome is
    /// missed, and consume the stream from a task that lives as long as the pipeline. Returns when the
    /// stream ends or the task is cancelled.
    public func log(_ outcomes: AsyncStream<SegmentOutcome>, of pipeline: SegmentPipeline) async {
        logStarted(pipeline)
        for await outcome in outcomes {
            log(outcome)
        }
        logStopped(await pipeline.counters)
    }

    /// Logs one outcome at its level.
    public func log(_ outcome: SegmentOutcome) {
        switch outcome {
        case .delivered(let messages, let statusCode):
            logger.debug(
                "Segment delivered \(messages.count) messages",
                metadata: baseMetadata([
                    "refiner_segment.outcome": "delivered",
                    "refiner_segment.messages": "\(messages.count)",
                    "refiner_segment.status": "\(statusCode)",
                ]))
        case .retrying(let messages, let retryCount, let delay, let reason):
            logger.debug(
                "Segment attempt failed; retry \(retryCount) of \(messages.count) messages in \(delay)",
                metadata: baseMetadata([
                    "refiner_segment.outcome": "retrying",
                    "refiner_segment.messages": "\(messages.count)",
                    "refiner_segment.retry_count": "\(retryCount)",
                    "refiner_segment.delay": "\(delay)",
                    "refiner_segment.reason": "\(reason)",
                ]))
        case .failed(let messages, let reason):
            logger.warning(
                "Segment failed \(messages.count) messages for good: \(reason)",
                metadata: baseMetadata([
                    "refiner_segment.outcome": "failed",
                    "refiner_segment.messages": "\(messages.count)",
                    "refiner_segment.reason": "\(reason)",
                    "refiner_segment.message_ids": .array(
                        messages.prefix(Self.maximumListedMessageIDs).map { .string($0.messageID) }),
                ]))
        case .handedBack(let messages):
            logger.info(
                "Segment pipeline handed back \(messages.count) undelivered messages",
                metadata: baseMetadata([
                    "refiner_segment.outcome": "handed_back",
                    "refiner_segment.messages": "\(messages.count)",
                ]))
        }
    }

    /// Logs that the pipeline's events are being logged from now on, with its endpoint.
    public func logStarted(_ pipeline: SegmentPipeline) {
        logger.info(
            "Segment pipeline started",
            metadata: baseMetadata(["refiner_segment.endpoint": "\(pipeline.configuration.endpoint)"]))
    }

    /// Logs that the pipeline has stopped, with what it did.
    public func logStopped(_ counters: SegmentPipeline.Counters) {
        logger.info(
            """
            Segment pipeline stopped: \(counters.accepted) messages accepted, \(counters.delivered) delivered, \
            \(counters.failed) failed, \(counters.handedBack) handed back
            """,
            metadata: baseMetadata([
                "refiner_segment.accepted": "\(counters.accepted)",
                "refiner_segment.delivered": "\(counters.delivered)",
                "refiner_segment.failed": "\(counters.failed)",
                "refiner_segment.handed_back": "\(counters.handedBack)",
                "refiner_segment.retries": "\(counters.retries)",
            ]))
    }

    private func baseMetadata(_ metadata: Logger.Metadata) -> Logger.Metadata {
        guard let tenant else { return metadata }
        var metadata = metadata
        metadata["refiner_segment.tenant"] = .string(tenant)
        return metadata
    }
}
