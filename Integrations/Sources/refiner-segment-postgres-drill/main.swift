// One instance of a cluster on the PostgreSQL stores, for the multi-process tests and the throughput figures.
//
//   refiner-segment-postgres-drill migrate URL SCHEMA          (creates the schema when missing)
//   refiner-segment-postgres-drill enqueue URL SCHEMA [tenants=20] [units=1000] [first=0] [perStatement=500]
//   refiner-segment-postgres-drill deliver URL SCHEMA endpoint=http://127.0.0.1:PORT [owner=NAME] [leaseMs=30000]
//       [concurrency=4] [batch=2500] [channel=NAME] [untilEmpty=1] [transport=asynchttpclient|urlsession]
//   refiner-segment-postgres-drill profiles URL SCHEMA input=FILE [tasks=8] [seed=1]
//
// SCHEMA is the PostgreSQL schema that holds the tables (set as the connections' search_path); it must exist and
// be migrated. Every command reports on stdout as JSON Lines, one event per line, written unbuffered, so that a
// test reading it can kill the process at a chosen moment. Exit status 0 on success, 1 on failure, 64 on bad use.
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentPostgres
import RefinerSegmentURLSession

/// Writes whole lines to stdout, one writer at a time.
let output = NIOLock()
@Sendable func emit(_ line: String) {
    output.withLock { try? FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8)) }
}

@Sendable func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data(("refiner-segment-postgres-drill: " + message + "\n").utf8))
    exit(status)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3 else {
    fail("usage: refiner-segment-postgres-drill enqueue|deliver|profiles URL SCHEMA [key=value...]", status: 64)
}
let (command, url, schema) = (arguments[0], arguments[1], arguments[2])
var parsedOptions: [String: String] = [:]
for argument in arguments.dropFirst(3) {
    guard let equals = argument.firstIndex(of: "=") else { fail("expected key=value, got '\(argument)'", status: 64) }
    parsedOptions[String(argument[..<equals])] = String(argument[argument.index(after: equals)...])
}

var configuration: PostgresClient.Configuration
do {
    configuration = try PostgresClient.Configuration(refinerSegmentURL: url)
} catch {
    fail("\(error)", status: 64)
}
// Named by schema and owner, so a test can wait until a killed instance's sessions are gone from the server:
// a statement it sent just before it died still runs to its end there.
configuration.options.additionalStartupParameters = [
    ("search_path", schema), ("application_name", schema + " " + (parsedOptions["owner"] ?? command)),
]
configuration.options.maximumConnections = 8
var quietLogger = Logger(label: "refiner-segment-postgres-drill")
// Errors only: postgres-nio warns of a harmless race between the first lease and run() starting.
quietLogger.logLevel = .error
let drill = Drill(
    options: parsedOptions,
    client: PostgresClient(configuration: configuration, backgroundLogger: quietLogger),
    logger: quietLogger
)

/// The commands, on the parsed options and one client.
struct Drill: Sendable {
    let options: [String: String]
    let client: PostgresClient
    let logger: Logger

    func option(_ name: String, _ fallback: Int) -> Int {
        guard let text = options[name] else { return fallback }
        guard let value = Int(text) else { fail("\(name) must be a whole number, got '\(text)'", status: 64) }
        return value
    }

    /// Milliseconds since 1970, for the events.
    @Sendable func milliseconds(_ date: Date) -> String { String(format: "%.3f", date.timeIntervalSince1970 * 1000) }

    @Sendable func sequences(_ messages: [OutboxMessage]) -> String {
        "[" + messages.map { String($0.sequence) }.joined(separator: ",") + "]"
    }

    /// The synthetic messages of tenant `t`, unit `u`: an identify and its group, about 250 bytes each.
    @Sendable func unit(tenant: String, index: Int) -> [SegmentMessage] {
        ["identify", "group"].map { kind in
            let id = "\(tenant)-\(index)-\(kind)"
            let json = """
                {"type":"\(kind)","userId":"u-\(index)","messageId":"\(id)","timestamp":"2026-11-20T10:15:00.000Z",\
                "traits":{"refiner_n":\(index),"refiner_pad":"\(String(repeating: "x", count: 100))"},\
                "context":{"library":{"name":"refiner-segment-swift","version":"0.1.0"}}}
                """
            return SegmentMessage(
                kind: SegmentMessage.Kind(rawValue: kind), messageID: id, responseID: "r-\(index)",
                json: Array(json.utf8))
        }
    }

    func enqueue() async throws {
        let outbox = PostgresOutbox(
            client: client, configuration: .init(channel: options["channel"] ?? "refiner_segment_outbox"),
            logger: logger)
        let tenants = option("tenants", 20)
        let units = option("units", 1000)
        let first = option("first", 0)
        let perStatement = option("perStatement", 500)
        let workers = option("workers", 4)
        let start = ContinuousClock.now
        // Each worker enqueues whole tenants' ranges, `perStatement` units per statement.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    for tenantIndex in stride(from: worker, to: tenants, by: workers) {
                        let tenant = String(format: "tenant-%02d", tenantIndex)
                        var index = first
                        while index < first + units {
                            let end = min(index + perStatement, first + units)
                            try await outbox.enqueue(
                                (index..<end).map { unit(tenant: tenant, index: $0) }, tenant: tenant)
                            index = end
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        emit(#"{"e":"enqueued","messages":\#(tenants * units * 2),"seconds":\#(seconds)}"#)
    }

    func deliver() async throws {
        guard let endpointText = options["endpoint"], let endpointURL = URL(string: endpointText) else {
            fail("deliver needs endpoint=http://127.0.0.1:PORT", status: 64)
        }
        let owner = options["owner"] ?? PostgresOutbox.Configuration.defaultOwner()
        let outbox = PostgresOutbox(
            client: client,
            configuration: .init(
                owner: owner,
                lease: .milliseconds(option("leaseMs", 30_000)),
                channel: options["channel"] ?? "refiner_segment_outbox"
            ),
            logger: logger
        )
        let endpoint = SegmentEndpoint(baseURL: endpointURL)
        // AsyncHTTPClient by default, what a server on SwiftNIO sends with; URLSession (FoundationNetworking on
        // Linux, which sends the body chunked) to compare.
        let transport: any SegmentTransport
        switch options["transport"] ?? "asynchttpclient" {
        case "asynchttpclient": transport = AsyncHTTPClientTransport()
        case "urlsession": transport = URLSessionTransport()
        case let other: fail("transport must be asynchttpclient or urlsession, got '\(other)'", status: 64)
        }
        let sender = PostgresOutboxSender(
            outbox: outbox,
            transport: transport,
            configuration: .init(
                concurrency: option("concurrency", 4), maximumBatchMessages: option("batch", 2500),
                idlePoll: .seconds(1)),
            destination: { tenant in .init(writeKey: WriteKey("wk-" + tenant), endpoint: endpoint) },
            onEvent: { event in
                switch event {
                case .claimed(let batch):
                    emit(
                        #"{"e":"claimed","owner":"\#(owner)","tenant":"\#(batch.tenant)","at":\#(milliseconds(batch.claimedAt)),"#
                            + #""until":\#(milliseconds(batch.leaseUntil)),"seqs":\#(sequences(batch.messages))}"#
                    )
                case .delivered(let tenant, let messages):
                    emit(#"{"e":"delivered","owner":"\#(owner)","tenant":"\#(tenant)","seqs":\#(sequences(messages))}"#)
                case .failed(let tenant, let messages, let reason):
                    emit(
                        #"{"e":"failed","owner":"\#(owner)","tenant":"\#(tenant)","count":\#(messages.count),"reason":"\#(reason.count)"}"#
                    )
                case .retrying(let tenant, let after, _):
                    emit(#"{"e":"retrying","owner":"\#(owner)","tenant":"\#(tenant)","after":"\#(after)"}"#)
                case .paused(let tenant, let duration):
                    emit(#"{"e":"paused","owner":"\#(owner)","tenant":"\#(tenant)","for":"\#(duration)"}"#)
                }
            }
        )
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await sender.run() }
            if options["untilEmpty"] == "1" {
                group.addTask {
                    // Two empty looks in a row, half a second apart: nothing left, not even a dead instance's lease.
                    var empty = 0
                    while empty < 2 {
                        try await Task.sleep(for: .milliseconds(500))
                        // A cheap look (usage() counts every row): is any row left, leased or not?
                        let rows = try await client.query("SELECT EXISTS (SELECT 1 FROM refiner_segment_outbox)")
                        var left = true
                        for try await (found) in rows.decode(Bool.self) { left = found }
                        empty = left ? 0 : empty + 1
                    }
                }
                try await group.next()
                group.cancelAll()
            } else {
                try await group.waitForAll()
            }
        }
        let elapsed = ContinuousClock.now - start
        emit(
            #"{"e":"done","owner":"\#(owner)","seconds":\#(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)}"#
        )
    }

    func profiles() async throws {
        guard let path = options["input"], let data = FileManager.default.contents(atPath: path) else {
            fail("profiles needs input=FILE, a JSON Lines file of responses", status: 64)
        }
        let store = PostgresProfileStore(client: client, logger: logger)
        let builder = try SegmentCallBuilder()
        var responses: [SurveyResponse] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            responses.append(try JSONDecoder().decode(SurveyResponse.self, from: Data(line.utf8)))
        }
        var generator = SeededGenerator(seed: UInt64(option("seed", 1)))
        responses.shuffle(using: &generator)
        let tasks = option("tasks", 8)
        let shuffled = responses
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for response in stride(from: task, to: shuffled.count, by: tasks).map({ shuffled[$0] }) {
                        _ = try await store.apply(response, builder: builder)
                    }
                }
            }
            try await group.waitForAll()
        }
        emit(#"{"e":"merged","responses":\#(responses.count)}"#)
    }

}

/// SplitMix64: a shuffle each process repeats from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

do {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await drill.client.run() }
        switch command {
        case "migrate":
            try await drill.client.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: "\"" + schema + "\"")")
            let applied = try await PostgresSchema.migrate(client: drill.client, logger: drill.logger)
            emit(#"{"e":"migrated","applied":\#(applied)}"#)
        case "enqueue": try await drill.enqueue()
        case "deliver": try await drill.deliver()
        case "profiles": try await drill.profiles()
        default: fail("unknown command '\(command)'", status: 64)
        }
        group.cancelAll()
    }
} catch {
    fail("\(error)")
}
