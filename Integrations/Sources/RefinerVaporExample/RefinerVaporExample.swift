import Foundation
import RefinerSegment
import RefinerWebhookIntake
import Vapor

/// Refiner's "Completed Survey" webhook in a Vapor 4 application: the same endpoint, settings and answers
/// as the Hummingbird bridge, through the same ``RefinerWebhookIntake``.
public enum RefinerVaporExample {
    /// Adds `POST /webhooks/refiner` and `GET /health` to the application.
    ///
    /// - Parameters:
    ///   - app: The application.
    ///   - settings: The bridge's settings (``BridgeSettings``).
    ///   - pipeline: Where the calls are recorded; the host runs it and shuts it down (see ``run(_:pipeline:)``).
    public static func configure(_ app: Application, settings: BridgeSettings, pipeline: SegmentPipeline) throws {
        if settings.secret == nil {
            app.logger.warning(
                "BRIDGE_ALLOW_UNAUTHENTICATED=1: every POST to /webhooks/refiner is accepted, from anyone")
        }
        let intake = RefinerWebhookIntake(
            secret: settings.secret,
            profiles: MemoryProfileStore(),
            builder: try SegmentCallBuilder(),
            pipeline: pipeline,
            acceptTimeout: settings.acceptTimeout
        )
        // Streamed, so that the secret is checked before the body is read.
        app.on(.POST, "webhooks", "refiner", body: .stream) { request async -> Response in
            Response(status: HTTPResponseStatus(statusCode: await answer(request, intake: intake).statusCode))
        }
        app.get("health") { _ in HTTPStatus.ok }
    }

    private static func answer(_ request: Request, intake: RefinerWebhookIntake) async -> WebhookAnswer {
        let presented = intake.secret.flatMap { request.headers.first(name: $0.headerName) }
        guard intake.isAuthorized(presenting: presented) else { return .unauthorized }
        let body: ByteBuffer?
        do {
            body = try await request.body.collect(max: RefinerWebhookIntake.maximumBodyBytes).get()
        } catch let error as any AbortError where error.status == .payloadTooLarge {
            return .tooLarge
        } catch {
            return .timedOut  // the client went away mid-body
        }
        // A body Vapor had already collected is returned whatever its size: check it here too.
        guard (body?.readableBytes ?? 0) <= RefinerWebhookIntake.maximumBodyBytes else { return .tooLarge }
        return await intake.accept(body?.readableBytesView ?? ByteBuffer().readableBytesView, logger: request.logger)
    }

    /// Runs the application and the pipeline until the application stops (SIGTERM, SIGINT), then lets the
    /// pipeline drain within its grace period. Meanwhile the pipeline's outcomes are logged, and the
    /// messages that fail for good or are handed back undelivered are appended to the undelivered file.
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
