import HTTPTypes
import Hummingbird
import NIOCore
import RefinerWebhookIntake

/// Hummingbird's side of `POST /webhooks/refiner`: the secret header, a bounded body read in bounded
/// time, and the answer ``RefinerWebhookIntake`` gives.
struct RefinerWebhookEndpoint: Sendable {
    /// The webhook's rules, shared with the Vapor example.
    var intake: RefinerWebhookIntake
    /// How long the body may take to arrive once the head has (the idle timeout covers the head).
    var readTimeout: Duration

    func respond(to request: Request, context: some RequestContext) async -> Response {
        Response(status: HTTPResponse.Status(code: await answer(request, context: context).statusCode))
    }

    private func answer(_ request: Request, context: some RequestContext) async -> WebhookAnswer {
        // 1. The secret goes first, before the body is read.
        let presented = intake.secret.flatMap { HTTPField.Name($0.headerName) }.flatMap { request.headers[$0] }
        guard intake.isAuthorized(presenting: presented) else { return .unauthorized }

        // 2. The body, bounded in size and in time: a client that trickles it is cut off.
        let body: ByteBuffer
        switch await Self.collect(request.body, upTo: RefinerWebhookIntake.maximumBodyBytes, within: readTimeout) {
        case .body(let collected): body = collected
        case .answer(let answer): return answer
        }

        // 3. Decode, build, record: the rules both example servers share.
        return await intake.accept(body.readableBytesView, logger: context.logger)
    }

    private static func collect(
        _ body: RequestBody,
        upTo maximumBytes: Int,
        within timeout: Duration
    ) async -> BodyRead {
        await withTaskGroup(of: BodyRead.self) { group in
            group.addTask {
                do {
                    return .body(try await body.collect(upTo: maximumBytes))
                } catch is NIOTooManyBytesError {
                    return .answer(.tooLarge)
                } catch {
                    return .answer(.timedOut)  // the client went away mid-body, or was cut off
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .answer(.timedOut)
            }
            let first = await group.next() ?? .answer(.timedOut)
            group.cancelAll()
            return first
        }
    }

    /// A body read in time, or how to answer instead.
    private enum BodyRead: Sendable {
        case body(ByteBuffer)
        case answer(WebhookAnswer)
    }
}
