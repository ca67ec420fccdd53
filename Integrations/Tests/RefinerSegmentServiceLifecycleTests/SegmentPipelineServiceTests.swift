import Foundation
import Logging
import RefinerSegment
import RefinerSegmentServiceLifecycle
import RefinerSegmentTesting
import ServiceLifecycle
import Testing

/// An identify for message `index`: a unit of one message with a unique, deterministic messageId.
private func unit(_ index: Int) -> [SegmentMessage] {
    let id = "message-\(index)"
    return [
        SegmentMessage(kind: .identify, messageID: id, json: Array(#"{"type":"identify","messageId":"\#(id)"}"#.utf8))
    ]
}

/// The messageIds a batch request carried.
private func messageIDs(in request: SegmentRequest) throws -> [String] {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
    let batch = try #require(object["batch"] as? [[String: Any]])
    return batch.compactMap { $0["messageId"] as? String }
}

/// Records messages, one unit at a time, until graceful shutdown or until the pipeline stops accepting;
/// keeps the ids of every unit whose `record` returned, and says when `signalAfter` of them have.
private actor Traffic: Service {
    let pipeline: SegmentPipeline
    let signalAfter: Int
    let signal: AsyncStream<Void>.Continuation
    private(set) var accepted: [String] = []
    private(set) var refusedWhileShuttingDown = 0

    init(pipeline: SegmentPipeline, signalAfter: Int, signal: AsyncStream<Void>.Continuation) {
        self.pipeline = pipeline
        self.signalAfter = signalAfter
        self.signal = signal
    }

    func run() async {
        var index = 0
        while !Task.isShuttingDownGracefully {
            let messages = unit(index)
            index += 1
            do {
                try await pipeline.record(messages)
                accepted.append(contentsOf: messages.map(\.messageID))
                if accepted.count == signalAfter { signal.yield() }
            } catch {
                refusedWhileShuttingDown += 1
                break  // shut down: nothing of this unit was accepted
            }
        }
        signal.finish()
        // A service that returns before its turn to stop fails the group: wait for it.
        try? await gracefulShutdown()
    }
}

@Suite struct SegmentPipelineServiceTests {
    /// The order of the services: the realistic one (the pipeline first, so it shuts down last, after the
    /// traffic has stopped) and the racing one (the pipeline shuts down while traffic still records).
    @Test(arguments: [true, false])
    func gracefulShutdownMidTrafficLosesNothing(pipelineFirst: Bool) async throws {
        let transport = ScriptedTransport([], whenDone: .delay(.milliseconds(1), then: .status(200)))
        var configuration = SegmentPipeline.Configuration()
        configuration.batch = SegmentPipeline.BatchLimits(maximumMessages: 25)
        configuration.queue = SegmentPipeline.QueueLimits(maximumMessages: 100)
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_lifecycle"), transport: transport, configuration: configuration)
        let outcomes = await pipeline.outcomes()
        let (signal, continuation) = AsyncStream.makeStream(of: Void.self)
        let traffic = Traffic(pipeline: pipeline, signalAfter: 300, signal: continuation)
        let service = SegmentPipelineService(pipeline)
        let group = ServiceGroup(
            services: pipelineFirst ? [service, traffic] : [traffic, service],
            logger: Logger(label: "test")
        )

        let settled = try await withThrowingTaskGroup(of: [SegmentOutcome]?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask {
                var seen: [SegmentOutcome] = []
                for await outcome in outcomes { seen.append(outcome) }
                return seen
            }
            // Mid-traffic: 300 messages accepted, more on their way.
            for await _ in signal { break }
            await group.triggerGracefulShutdown()
            var settled: [SegmentOutcome] = []
            for try await result in tasks {
                if let result { settled = result }
            }
            return settled
        }

        let accepted = await traffic.accepted
        #expect(accepted.count >= 300)
        var delivered: [String] = []
        var handedBack: [String] = []
        for outcome in settled {
            switch outcome {
            case .delivered: delivered += outcome.messageIDs
            case .handedBack: handedBack += outcome.messageIDs
            case .failed, .retrying: Issue.record("unexpected outcome \(outcome)")
            }
        }
        // Nothing accepted is lost, nothing is counted twice, and what Segment received is what was delivered.
        #expect((delivered + handedBack).sorted() == accepted.sorted())
        var sent: [String] = []
        for request in await transport.requests { sent += try messageIDs(in: request) }
        #expect(Set(sent).isSuperset(of: delivered))
        #expect(await pipeline.counters.accepted == accepted.count)
    }

    @Test func cancellationStopsAtOnceAndHandsBackWhatWasNotDelivered() async throws {
        // Segment never answers: only cancellation can end the run.
        let transport = ScriptedTransport([], whenDone: .hang)
        let pipeline = try SegmentPipeline(writeKey: WriteKey("wk_lifecycle"), transport: transport)
        let outcomes = await pipeline.outcomes()
        for index in 0..<10 { try await pipeline.record(unit(index)) }

        let run = Task {
            try await ServiceGroup(services: [SegmentPipelineService(pipeline)], logger: Logger(label: "test")).run()
        }
        run.cancel()
        _ = try? await run.value

        var handedBack: [String] = []
        for await outcome in outcomes {
            if case .handedBack(let messages) = outcome { handedBack += messages.map(\.messageID) }
        }
        #expect(handedBack.sorted() == (0..<10).map { "message-\($0)" }.sorted())
        #expect(await pipeline.counters.delivered == 0)
    }

    @Test func descriptionNamesTheEndpointNotTheKey() throws {
        let pipeline = try SegmentPipeline(writeKey: WriteKey("wk_never_shown"), transport: RecordingTransport())
        let service = SegmentPipelineService(pipeline)
        #expect(!service.description.contains("wk_never_shown"))
        #expect(service.description.contains("api.segment.io"))
    }
}
