import AsyncHTTPClientTransport
import Foundation
import Hummingbird
import Logging
import RefinerSegment

/// `refiner-webhook-bridge`: receives Refiner's "Completed Survey" webhook on `POST /webhooks/refiner` and
/// delivers the `identify` and `group` calls to any Segment workspace, EU-region ones included.
///
/// Settings come from the environment (``BridgeSettings``). SIGTERM or SIGINT stops the server, then drains
/// the pipeline for `BRIDGE_SHUTDOWN_SECONDS`.
@main
struct RefinerWebhookBridge {
    static func main() async {
        let logger = Logger(label: "refiner-webhook-bridge")
        do {
            try await run(BridgeSettings(environment: ProcessInfo.processInfo.environment), logger: logger)
        } catch {
            logger.critical("refiner-webhook-bridge stopped: \(error)")
            exit(1)
        }
    }

    static func run(_ settings: BridgeSettings, logger: Logger) async throws {
        var configuration = settings.pipeline
        configuration.shutdownGracePeriod = .milliseconds(Int64(settings.shutdownSeconds * 1000))
        let pipeline = try SegmentPipeline(
            writeKey: settings.writeKey,
            transport: AsyncHTTPClientTransport(),
            configuration: configuration
        )
        if settings.secret == nil {
            logger.warning("REFINER_WEBHOOK_SECRET is not set: every POST to /webhooks/refiner is accepted")
        }
        let endpoint = RefinerWebhookEndpoint(
            secret: settings.secret,
            profiles: MemoryProfileStore(),
            builder: try SegmentCallBuilder(),
            pipeline: pipeline
        )

        let router = Router()
        router.post("/webhooks/refiner") { request, context in
            Response(status: await endpoint.respond(to: request, context: context))
        }
        router.get("/health") { _, _ in
            Response(status: .ok)
        }

        // Subscribed now, before the server accepts a webhook, so that the service sees every outcome.
        // Unbounded: a failed outcome carries the messages the service saves.
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port)),
            services: [
                SegmentPipelineService(
                    pipeline: pipeline,
                    outcomes: outcomes,
                    shutdownSeconds: settings.shutdownSeconds,
                    undeliveredFile: settings.undeliveredFile,
                    logger: logger
                )
            ],
            logger: logger
        )
        logger.info("Sending to Segment at \(settings.pipeline.endpoint)")
        try await app.runService()
    }
}
