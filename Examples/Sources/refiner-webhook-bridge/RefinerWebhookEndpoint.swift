import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RefinerSegment

/// Answers Refiner's "Completed Survey" webhook: checks the shared secret, decodes the payload, and records
/// its Segment calls in the pipeline, which batches, sends and retries them.
///
/// | Request | Answer |
/// | --- | --- |
/// | no secret, or the wrong one | 401 |
/// | a body over 1 MiB | 413 |
/// | another event than "Completed Survey" | 200, ignored |
/// | not JSON, a required field missing, an answer Segment cannot take | 422 (sending it again will not help) |
/// | the pipeline is shutting down | 503 (Refiner sends it again later) |
/// | otherwise | 200, once the calls are accepted for delivery |
struct RefinerWebhookEndpoint: Sendable {
    /// The shared secret a request must present; `nil` accepts every request.
    var secret: WebhookSecret?
    /// The collected profiles the calls are built on: in memory for the example (bounded; after a restart,
    /// `identify` calls carry only what is collected from then on).
    var profiles: MemoryProfileStore
    /// Builds the calls.
    var builder: SegmentCallBuilder
    /// Where the calls go.
    var pipeline: SegmentPipeline

    /// Refiner's payloads are a few kilobytes.
    static let maximumBodyBytes = 1 << 20

    func respond(to request: Request, context: some RequestContext) async -> HTTPResponse.Status {
        // 1. The secret goes first, before the body is read: a request without it costs nothing and learns
        //    nothing.
        if let secret {
            guard let presented = request.headers[secret.headerName], secret.matches(presented) else {
                return .unauthorized
            }
        }

        // 2. The body, bounded.
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maximumBodyBytes)
        } catch is NIOTooManyBytesError {
            return .contentTooLarge
        } catch {
            return .badRequest  // the client went away mid-body
        }

        // 3. Payload -> completed response.
        let response: SurveyResponse
        do {
            response = try SurveyResponse(refinerWebhook: body.readableBytesView)
        } catch let error where error.code == .unhandledEvent {
            // Another event (a webhook set to a wider trigger): nothing to send, and nothing to retry.
            context.logger.debug("Refiner webhook ignored: \(error)")
            return .ok
        } catch {
            // The description names what was wrong (`missing field 'response.uuid'`).
            context.logger.warning("Refiner webhook rejected: \(error)")
            return .unprocessableContent
        }

        // 4. Apply it to the profiles, build identify and group on them, and record them in the pipeline, in
        //    one order per user and per account (so an older identify never overtakes a newer one). Their
        //    messageIds derive from Refiner's response uuid, so a webhook that arrives twice (a retry after a
        //    503) is deduplicated by Segment, and merging it again changes no trait.
        do {
            try await pipeline.record(response, profiles: profiles, builder: builder)
        } catch let error as RefinerSegmentError {
            context.logger.warning("Refiner webhook rejected: \(error)")
            return .unprocessableContent
        } catch let error as SegmentDeliveryError {
            switch error.code {
            case .messageTooLarge, .unitTooLarge:
                context.logger.warning("Refiner response \(response.id) is too large for Segment: \(error)")
                return .unprocessableContent
            default:
                // Shutting down (or a full queue with a fail-fast policy): accepted nothing; ask for a retry.
                context.logger.notice("Refiner response \(response.id) not accepted: \(error)")
                return .serviceUnavailable
            }
        } catch {
            // The profile store could not apply it (or the request was cancelled): Refiner sends it again.
            context.logger.notice("Refiner response \(response.id) not accepted: \(error)")
            return .serviceUnavailable
        }
        return .ok
    }
}

/// A shared secret that Refiner sends with each webhook, in a header.
///
/// Its description, debug description and reflection name the header only, so printing the settings or
/// dumping them cannot show the secret.
struct WebhookSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The header that carries it.
    var headerName: HTTPField.Name
    /// The secret itself.
    var value: String

    /// Whether `presented` is the secret, in a time that depends only on the secret's length, so that
    /// timing reveals nothing of it.
    func matches(_ presented: String) -> Bool {
        let expected = Array(value.utf8)
        let presented = Array(presented.utf8)
        var difference: UInt8 = presented.count == expected.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < presented.count ? presented[index] : 0)
        }
        return difference == 0
    }

    /// `WebhookSecret(header: x-refiner-secret, value: redacted)`.
    var description: String { "WebhookSecret(header: \(headerName), value: redacted)" }
    /// The same as ``description``.
    var debugDescription: String { description }
    /// The header only.
    var customMirror: Mirror { Mirror(self, children: ["headerName": headerName]) }
}
