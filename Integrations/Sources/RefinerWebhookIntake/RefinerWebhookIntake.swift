import Logging
import RefinerSegment

/// The rules of Refiner's "Completed Survey" webhook, apart from any HTTP framework: both example servers
/// (Hummingbird and Vapor) answer through it, so they answer alike.
///
/// | Request | Answer |
/// | --- | --- |
/// | no secret, or the wrong one | 401 |
/// | a body over 1 MiB | 413 |
/// | another event than "Completed Survey" | 200, ignored |
/// | not JSON, a required field missing, an answer Segment cannot take | 422 (sending it again will not help) |
/// | the pipeline is shutting down, or not accepting within ``acceptTimeout`` | 503 (Refiner sends it again later) |
/// | otherwise | 200, once the calls are accepted for delivery (durably, with a durable store) |
public struct RefinerWebhookIntake: Sendable {
    /// The shared secret a request must present; `nil` accepts every request (an explicit opt-in).
    public var secret: WebhookSecret?
    /// The collected profiles the calls are built on.
    public var profiles: ProfileKeeper
    /// Where the calls go.
    public var pipeline: SegmentPipeline
    /// How long a webhook may wait for room in the pipeline before it is answered 503: a stalled Segment
    /// then turns into retries from Refiner, not into requests (and connections) held open without end.
    public var acceptTimeout: Duration

    /// Refiner's payloads are a few kilobytes.
    public static let maximumBodyBytes = 1 << 20

    /// Creates the intake.
    public init(
        secret: WebhookSecret?,
        profiles: ProfileKeeper,
        pipeline: SegmentPipeline,
        acceptTimeout: Duration = .seconds(2)
    ) {
        self.secret = secret
        self.profiles = profiles
        self.pipeline = pipeline
        self.acceptTimeout = acceptTimeout
    }

    /// Whether a request that presented `value` in the secret's header may go on. Check it before reading
    /// the body: a request without the secret costs nothing and learns nothing.
    public func isAuthorized(presenting value: String?) -> Bool {
        guard let secret else { return true }
        guard let value else { return false }
        return secret.matches(value)
    }

    /// Decodes a webhook body, builds its calls and records them, and says how to answer.
    ///
    /// - Parameters:
    ///   - body: The request body, already bounded by ``maximumBodyBytes``.
    ///   - logger: The request's logger.
    public func accept(_ body: some Collection<UInt8>, logger: Logger) async -> WebhookAnswer {
        // Payload -> completed response -> identify and group, on the profiles collected so far.
        let response: SurveyResponse
        let messages: [SegmentMessage]
        do {
            response = try SurveyResponse(refinerWebhook: body)
        } catch let error where error.code == .unhandledEvent {
            // Another event (a webhook set to a wider trigger): nothing to send, and nothing to retry.
            logger.debug("Refiner webhook ignored: \(error)")
            return .ignored
        } catch {
            // The description names what was wrong (`missing field 'response.uuid'`).
            logger.info("Refiner webhook rejected: \(error)")
            return .invalid
        }
        do {
            messages = try await profiles.process(
                response, maximumMessageBytes: pipeline.configuration.batch.maximumMessageBytes)
        } catch {
            logger.info("Refiner webhook rejected: \(error)")
            return .invalid
        }

        // Hand the calls to the pipeline, within a bound. Their messageIds derive from Refiner's response
        // uuid, so a webhook that arrives twice (a retry after a 503) is deduplicated by Segment.
        do {
            try await record(messages)
        } catch {
            switch error.code {
            case .messageTooLarge, .unitTooLarge:
                logger.info("Refiner webhook rejected: too large for Segment: \(error)")
                return .invalid
            default:
                // Shutting down, a full queue, or no room within the bound: nothing accepted; ask for a retry.
                logger.notice("Refiner webhook not accepted, answered 503: \(error)")
                return .unavailable
            }
        }
        return .accepted
    }

    /// Records the messages, or gives up after ``acceptTimeout`` with nothing accepted.
    ///
    /// When the bound passes first, the waiting `record` is cancelled and its own answer is taken: it
    /// either was accepted just before (success) or accepted nothing (``SegmentDeliveryError/Code/cancelled``),
    /// never half of it.
    func record(_ messages: [SegmentMessage]) async throws(SegmentDeliveryError) {
        let pipeline = self.pipeline
        let timeout = acceptTimeout
        let result = await withTaskGroup(of: Result<Void, SegmentDeliveryError>?.self) { group in
            group.addTask {
                do throws(SegmentDeliveryError) {
                    try await pipeline.record(messages)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var outcome: Result<Void, SegmentDeliveryError>?
            while outcome == nil, let next = await group.next() {
                // The first to finish cancels the other; after the timer, `record` still gives its answer.
                group.cancelAll()
                outcome = next
            }
            return outcome ?? .success(())
        }
        try result.get()
    }
}

/// How the intake answers a webhook.
public enum WebhookAnswer: Sendable, Hashable {
    /// The calls are accepted for delivery: 200.
    case accepted
    /// Another event than "Completed Survey": 200, nothing to send.
    case ignored
    /// No secret, or the wrong one: 401.
    case unauthorized
    /// The body is larger than ``RefinerWebhookIntake/maximumBodyBytes``: 413.
    case tooLarge
    /// The request did not arrive in time: 408.
    case timedOut
    /// The payload cannot be turned into calls that Segment takes: 422.
    case invalid
    /// Nothing was accepted (shutting down, or no room in time): 503, Refiner retries.
    case unavailable

    /// The HTTP status code.
    public var statusCode: Int {
        switch self {
        case .accepted, .ignored: 200
        case .unauthorized: 401
        case .timedOut: 408
        case .tooLarge: 413
        case .invalid: 422
        case .unavailable: 503
        }
    }
}
