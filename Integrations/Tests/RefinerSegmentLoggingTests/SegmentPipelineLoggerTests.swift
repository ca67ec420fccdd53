import Foundation
import InMemoryLogging
import Logging
import RefinerSegment
import RefinerSegmentLogging
import RefinerSegmentTesting
import Testing

private func unit(_ index: Int) -> [SegmentMessage] {
    let id = "message-\(index)"
    return [
        SegmentMessage(kind: .identify, messageID: id, json: Array(#"{"type":"identify","messageId":"\#(id)"}"#.utf8))
    ]
}

/// A logger that keeps every entry in memory, at every level.
private func makeLogger() -> (Logger, InMemoryLogHandler) {
    let handler = InMemoryLogHandler()
    var logger = Logger(label: "test") { _ in handler }
    logger.logLevel = .trace
    return (logger, handler)
}

/// Everything an entry shows: its message and every metadata value, flattened to text.
private func text(of entry: InMemoryLogHandler.Entry) -> String {
    "\(entry.message) " + entry.metadata.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
}

@Suite struct SegmentPipelineLoggerTests {
    static let writeKey = "wk_secret_9f8e7d6c5b4a"

    /// Runs a pipeline over `script`, records `units` units, shuts it down, and returns the log.
    private func log(
        _ script: [ScriptedTransport.Step],
        units: Int,
        tenant: String? = nil,
        flushes: Bool = true
    ) async throws -> [InMemoryLogHandler.Entry] {
        let transport = ScriptedTransport(script)
        var configuration = SegmentPipeline.Configuration()
        configuration.batch = SegmentPipeline.BatchLimits(maximumMessages: 1)  // one batch per unit
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey(Self.writeKey), transport: transport, configuration: configuration,
            jitter: { _ in .zero })
        let (logger, handler) = makeLogger()
        let outcomes = await pipeline.outcomes()
        async let logged: Void = SegmentPipelineLogger(logger: logger, tenant: tenant).log(outcomes, of: pipeline)
        let run = Task { try await pipeline.run() }
        for index in 0..<units { try await pipeline.record(unit(index)) }
        if flushes {
            await pipeline.flush()
            pipeline.triggerGracefulShutdown()
        } else {
            run.cancel()  // stop at once: what is in flight or queued is handed back
        }
        try await run.value
        await logged
        return handler.entries
    }

    @Test func deliveryIsLoggedAtDebugAndTheLifecycleAtInfo() async throws {
        let entries = try await log([.status(200)], units: 1)

        #expect(entries.first?.level == .info)
        #expect(entries.first?.metadata["refiner_segment.endpoint"] == "https://api.segment.io")
        let delivered = try #require(entries.first { $0.metadata["refiner_segment.outcome"] == "delivered" })
        #expect(delivered.level == .debug)
        #expect(delivered.metadata["refiner_segment.messages"] == "1")
        #expect(delivered.metadata["refiner_segment.status"] == "200")
        let stopped = try #require(entries.last)
        #expect(stopped.level == .info)
        #expect(stopped.metadata["refiner_segment.delivered"] == "1")
        #expect(stopped.metadata["refiner_segment.accepted"] == "1")
    }

    @Test func retriesAreLoggedAtDebugAndFailuresAtWarning() async throws {
        // A 500 (retried), then a 400 (dropped): one retry and one failure.
        let entries = try await log([.status(500), .status(400)], units: 1)

        let retrying = try #require(entries.first { $0.metadata["refiner_segment.outcome"] == "retrying" })
        #expect(retrying.level == .debug)
        #expect(retrying.metadata["refiner_segment.retry_count"] == "1")
        let failed = try #require(entries.first { $0.metadata["refiner_segment.outcome"] == "failed" })
        #expect(failed.level == .warning)
        #expect(failed.metadata["refiner_segment.message_ids"] == .array([.string("message-0")]))
        #expect(entries.filter { $0.level >= .warning }.count == 1)
    }

    @Test func handedBackMessagesAreLoggedAtInfo() async throws {
        let entries = try await log([.hang], units: 3, flushes: false)

        let handedBack = entries.filter { $0.metadata["refiner_segment.outcome"] == "handed_back" }
        #expect(!handedBack.isEmpty)
        #expect(handedBack.allSatisfy { $0.level == .info })
        let counts = handedBack.compactMap { entry -> Int? in
            guard case .string(let count) = entry.metadata["refiner_segment.messages"] else { return nil }
            return Int(count)
        }
        #expect(counts.reduce(0, +) == 3)
    }

    @Test func theTenantIsNamedWhenGiven() async throws {
        let entries = try await log([.status(200)], units: 1, tenant: "acme")

        #expect(!entries.isEmpty)
        #expect(entries.allSatisfy { $0.metadata["refiner_segment.tenant"] == "acme" })
    }

    @Test func theWriteKeyIsNeverLogged() async throws {
        // A proxy that echoes the request, write key included, in its error answers.
        let echo = #"{"error":"bad","writeKey":"\#(Self.writeKey)"}"#
        let entries = try await log([.status(500, body: echo), .status(400, body: echo)], units: 2)

        #expect(entries.contains { $0.level == .warning })
        for entry in entries {
            #expect(!text(of: entry).contains(Self.writeKey))
            #expect(!text(of: entry).contains(WriteKey(Self.writeKey).basicAuthorization.dropFirst("Basic ".count)))
        }
    }

    @Test func theLoggerIsTheHostsAndItsLevelIsKept() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "host") { _ in handler }
        logger.logLevel = .warning
        let adapter = SegmentPipelineLogger(logger: logger)
        adapter.log(.delivered(messageIDs: ["message-0"], statusCode: 200))
        adapter.logStopped(SegmentPipeline.Counters())

        #expect(adapter.logger.label == "host")
        #expect(handler.entries.isEmpty)
    }
}
