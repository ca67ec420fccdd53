import Foundation
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerVaporExample
import RefinerWebhookIntake
import Vapor

// `refiner-vapor-example serve`: the bridge's endpoint in a Vapor application, with the same settings
// (BridgeSettings) as refiner-webhook-bridge. Vapor reads its own options (--hostname, --port) as usual;
// BRIDGE_HOST and BRIDGE_PORT are the defaults.
var environment = try Environment.detect()
try LoggingSystem.bootstrap(from: &environment)
let app = try await Application.make(environment)
let settings: BridgeSettings
let stores: BridgeStores
do {
    settings = try BridgeSettings(environment: ProcessInfo.processInfo.environment)
    stores = try BridgeStores(settings: settings)  // locks BRIDGE_STORE_DIR
} catch {
    app.logger.critical("refiner-vapor-example stopped: \(error)")
    try await app.asyncShutdown()
    exit(1)
}
app.http.server.configuration.hostname = settings.host
app.http.server.configuration.port = settings.port
let pipeline = try SegmentPipeline(
    writeKey: settings.writeKey,
    transport: AsyncHTTPClientTransport(),  // never follows a redirect
    configuration: settings.pipeline,
    store: stores.messages  // a webhook is answered 200 once its calls are synced here
)
try RefinerVaporExample.configure(app, settings: settings, pipeline: pipeline, profiles: stores.profiles)
try await RefinerVaporExample.run(app, pipeline: pipeline, settings: settings)
try await app.asyncShutdown()
