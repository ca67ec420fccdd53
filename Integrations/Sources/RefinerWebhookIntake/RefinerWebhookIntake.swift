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
    /// The collected profiles the calls are built on (the examples keep them in a `FileProfileStore` in
    /// the store directory, ``BridgeStores``, so they survive restarts and do not fill memory).
    public var profiles: any ProfileStore
    /// Builds the calls.
    public var builder: SegmentCallBuilder
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
        profiles: any ProfileStore,
        builder: SegmentCallBuilder,
        pipeline: SegmentPipeline,
        acceptTimeout: Duration = .seconds(2)
    ) {
        self.secret = secret
        self.profiles = profiles
        self.builder = builder
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
        // Payload -> completed response.
        let response: SurveyResponse
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

        // Apply it to the profiles, build identify and group on them and record them, in one order per
        // user and per account, within a bound. Their messageIds derive from Refiner's response uuid, so a
        // webhook that arrives twice (a retry after a 503) is deduplicated by Segment, and merging it again
        // changes no trait.
        do {
            try await recordWithinBound(response)
        } catch let error as RefinerSegmentError {
            logger.info("Refiner webhook rejected: \(error)")
            return .invalid
        } catch let error as SegmentDeliveryError where [.messageTooLarge, .unitTooLarge].contains(error.code) {
            logger.info("Refiner webhook rejected: too large for Segment: \(error)")
            return .invalid
        } catch {
            // Shutting down, a full queue, no room within the bound, or a profile store that failed: nothing
            // was accepted; ask for a retry.
            logger.notice("Refiner webhook not accepted, answered 503: \(error)")
            return .unavailable
        }
        return .accepted
    }

    /// Records the response's calls, or gives up after ``acceptTimeout`` with nothing accepted.
    ///
    /// When the bound passes first, the waiting `record` is cancelled and its own answer is taken: it
    /// either was accepted just before (success) or accepted nothing (an error), never half of it.
    func recordWithinBound(_ response: SurveyResponse) async throws {
        let (pipeline, profiles, builder) = (self.pipeline, self.profiles, self.builder)
        let timeout = acceptTimeout
        let result = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    try await pipeline.record(response, profiles: profiles, builder: builder)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            var outcome: Result<Void, any Error>?
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
