import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentServiceLifecycle
import RefinerWebhookIntake
import ServiceLifecycle
import UnixSignals

/// `refiner-webhook-bridge`: receives Refiner's "Completed Survey" webhook on `POST /webhooks/refiner` and
/// delivers the `identify` and `group` calls to any Segment workspace, EU-region ones included.
///
/// Settings come from the environment (``BridgeSettings``). A webhook is answered 200 once its calls are
/// synced to the durable store in `BRIDGE_STORE_DIR`; a start first sends what an earlier run left there.
/// SIGTERM or SIGINT stops the server and then drains the pipeline, both within `BRIDGE_SHUTDOWN_SECONDS`.
public enum RefinerWebhookBridge {
    /// Reads the settings and runs the bridge until SIGTERM or SIGINT; exits with status 1 when it cannot.
    public static func main() async {
        let logger = Logger(label: "refiner-webhook-bridge")
        do {
            try await run(BridgeSettings(environment: ProcessInfo.processInfo.environment), logger: logger)
        } catch {
            logger.critical("refiner-webhook-bridge stopped: \(error)")
            exit(1)
        }
    }

    /// Runs the bridge until SIGTERM or SIGINT.
    ///
    /// The server and the pipeline stop together: the server stops taking webhooks and finishes the ones
    /// it holds, the pipeline delivers what it has, and when `BRIDGE_SHUTDOWN_SECONDS` have passed the rest
    /// is cancelled, leaving what was not delivered in the durable store for the next start.
    public static func run(_ settings: BridgeSettings, logger: Logger) async throws {
        // Locks the directory: a second bridge on it refuses to start.
        let stores = try BridgeStores(settings: settings)
        let pipeline = try SegmentPipeline(
            writeKey: settings.writeKey,
            transport: AsyncHTTPClientTransport(),  // never follows a redirect
            configuration: settings.pipeline,
            store: stores.messages
        )
        let app = try await makeApplication(
            settings: settings, pipeline: pipeline, profiles: stores.profiles, logger: logger)
        var group = ServiceGroupConfiguration(
            services: [.init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        group.maximumGracefulShutdownDuration = settings.shutdownTimeout
        logger.info("Sending to Segment at \(settings.pipeline.endpoint), store in \(settings.storeDirectory)")
        try await ServiceGroup(configuration: group).run()
    }

    /// The bridge's application: the routes, and the pipeline run as one of its services.
    ///
    /// Hummingbird shuts its services down in reverse order, the HTTP server first, so the pipeline drains
    /// once no webhook is being recorded any more.
    ///
    /// - Parameters:
    ///   - settings: The bridge's settings.
    ///   - pipeline: Where the calls are recorded: on the durable store for 200 to mean "kept".
    ///   - profiles: The collected profiles the calls are built on.
    ///   - logger: The server's logger.
    public static func makeApplication(
        settings: BridgeSettings,
        pipeline: SegmentPipeline,
        profiles: any ProfileStore,
        logger: Logger
    ) async throws -> some ApplicationProtocol {
        if settings.secret == nil {
            logger.warning("BRIDGE_ALLOW_UNAUTHENTICATED=1: every POST to /webhooks/refiner is accepted, from anyone")
        }
        let intake = RefinerWebhookIntake(
            secret: settings.secret,
            profiles: profiles,
            builder: try SegmentCallBuilder(),
            pipeline: pipeline,
            acceptTimeout: settings.acceptTimeout
        )
        let endpoint = RefinerWebhookEndpoint(intake: intake, readTimeout: settings.idleTimeout)

        let router = Router()
        router.post("/webhooks/refiner") { request, context in
            await endpoint.respond(to: request, context: context)
        }
        router.get("/health") { _, _ in
            Response(status: .ok)
        }

        // Subscribed now, before the server accepts a webhook, so that the reporter sees every outcome;
        // unbounded, because a failed outcome carries the messages the reporter saves.
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        return Application(
            router: router,
            // A connection that sends nothing, or not a whole request head, for this long is closed.
            server: .http1(configuration: .init(idleTimeout: TimeAmount(settings.idleTimeout))),
            configuration: .init(
                address: .hostname(settings.host, port: settings.port),
                availableConnectionsDelegate: MaximumAvailableConnections(settings.maximumConnections)
            ),
            services: [
                PipelineReporter(
                    report: PipelineReport(
                        undelivered: UndeliveredFile(path: settings.undeliveredFile), logger: logger),
                    pipeline: pipeline,
                    outcomes: outcomes
                ),
                SegmentPipelineService(pipeline),
            ],
            logger: logger
        )
    }
}
