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

    /// Runs the application until it stops (SIGTERM, SIGINT), then drains the pipeline for at most
    /// `shutdownTimeout`. Meanwhile the pipeline's outcomes are logged, and the messages that fail for good
    /// or are still undelivered at the end are appended to the undelivered file.
    public static func run(_ app: Application, pipeline: SegmentPipeline, settings: BridgeSettings) async throws {
        // Subscribed before the server starts, so that no outcome is missed.
        let outcomes = await pipeline.outcomes()
        let report = PipelineReport(undelivered: UndeliveredFile(path: settings.undeliveredFile), logger: app.logger)
        async let reported: Void = report.run(outcomes, of: pipeline)
        var failure: (any Error)?
        do {
            try await app.execute()
        } catch {
            failure = error
        }
        let drain = failure == nil ? settings.shutdownTimeout : .zero
        let seconds = Double(drain.components.seconds) + Double(drain.components.attoseconds) / 1e18
        _ = await pipeline.shutdown(deadline: Date.now.addingTimeInterval(seconds))
        await reported  // ends once the pipeline has shut down
        if let failure { throw failure }
    }
}
