import Foundation
import NIOCore
import RefinerSegment
import RefinerWebhookIntake
import Vapor

/// Refiner's "Completed Survey" webhook in a Vapor 4 application: the same endpoint, settings and answers
/// as the Hummingbird bridge, through the same ``RefinerWebhookIntake``.
public enum RefinerVaporExample {
    /// Adds `POST /webhooks/refiner` and `GET /health` to the application, and bounds its connections:
    /// one that sends nothing for `BRIDGE_IDLE_TIMEOUT_SECONDS` is closed, and a body has as long to arrive.
    ///
    /// - Parameters:
    ///   - app: The application.
    ///   - settings: The bridge's settings (``BridgeSettings``).
    ///   - pipeline: Where the calls are recorded, on the durable store (``BridgeStores``); the host runs it
    ///     and shuts it down (see ``run(_:pipeline:settings:)``).
    ///   - profiles: The collected profiles the calls are built on.
    public static func configure(
        _ app: Application,
        settings: BridgeSettings,
        pipeline: SegmentPipeline,
        profiles: any ProfileStore
    ) throws {
        if settings.secret == nil {
            app.logger.warning(
                "BRIDGE_ALLOW_UNAUTHENTICATED=1: every POST to /webhooks/refiner is accepted, from anyone")
        }
        let intake = RefinerWebhookIntake(
            secret: settings.secret,
            profiles: profiles,
            builder: try SegmentCallBuilder(),
            pipeline: pipeline,
            acceptTimeout: settings.acceptTimeout
        )
        // A connection silent this long is closed (slowloris; Vapor has no limit by default).
        app.http.server.configuration.idleTimeout = TimeAmount(settings.idleTimeout)
        let bodyTimeout = settings.idleTimeout
        // Streamed, so that the secret is checked before the body is read.
        app.on(.POST, "webhooks", "refiner", body: .stream) { request async -> Response in
            let answer = await answer(request, intake: intake, bodyTimeout: bodyTimeout)
            return Response(status: HTTPResponseStatus(statusCode: answer.statusCode))
        }
        app.get("health") { _ in HTTPStatus.ok }
    }

    private static func answer(
        _ request: Request,
        intake: RefinerWebhookIntake,
        bodyTimeout: Duration
    ) async -> WebhookAnswer {
        let presented = intake.secret.flatMap { request.headers.first(name: $0.headerName) }
        guard intake.isAuthorized(presenting: presented) else { return .unauthorized }
        let body: ByteBuffer?
        switch await collect(request, upTo: RefinerWebhookIntake.maximumBodyBytes, within: bodyTimeout) {
        case .body(let collected): body = collected
        case .answer(let answer): return answer
        }
        // A body Vapor had already collected is returned whatever its size: check it here too.
        guard (body?.readableBytes ?? 0) <= RefinerWebhookIntake.maximumBodyBytes else { return .tooLarge }
        return await intake.accept(body?.readableBytesView ?? ByteBuffer().readableBytesView, logger: request.logger)
    }

    /// The body, bounded in size and in time: a client that trickles it is answered 408.
    private static func collect(
        _ request: Request,
        upTo maximumBytes: Int,
        within timeout: Duration
    ) async -> BodyRead {
        await withTaskGroup(of: BodyRead.self) { group in
            group.addTask {
                // Read as an async sequence, which ends when the timer cancels it (a future would not).
                var collected: ByteBuffer?
                do {
                    for try await var chunk in request.body {
                        guard (collected?.readableBytes ?? 0) + chunk.readableBytes <= maximumBytes else {
                            return .answer(.tooLarge)
                        }
                        if collected == nil { collected = ByteBuffer() }
                        collected?.writeBuffer(&chunk)
                    }
                } catch {
                    return .answer(.timedOut)  // the client went away mid-body, or was cut off
                }
                return Task.isCancelled ? .answer(.timedOut) : .body(collected)
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

    /// A body read in time (`nil` when there is none), or how to answer instead.
    private enum BodyRead: Sendable {
        case body(ByteBuffer?)
        case answer(WebhookAnswer)
    }

    /// Runs the application and the pipeline until the application stops (SIGTERM, SIGINT), then lets the
    /// pipeline drain within its grace period; what it has not delivered by then stays in the durable store
    /// for the next start. Meanwhile the pipeline's outcomes are logged, and the messages that fail for good
    /// are appended to the undelivered file.
    public static func run(_ app: Application, pipeline: SegmentPipeline, settings: BridgeSettings) async throws {
        // Subscribed before the server starts, so that no outcome is missed; unbounded, because a failed
        // outcome carries the messages the report saves.
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let report = PipelineReport(undelivered: UndeliveredFile(path: settings.undeliveredFile), logger: app.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await report.run(outcomes, of: pipeline) }
            group.addTask { try await pipeline.run() }
            do {
                try await app.execute()
            } catch {
                pipeline.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            pipeline.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}
