import Foundation
import RefinerSegment
import RefinerSegmentTesting
import RefinerSegmentURLSession
import Testing

/// The kinds of answer the soak tests inject, and how often.
enum Fault: String, CaseIterable, Sendable {
    case ok = "200"
    case slow = "slow 200"
    case serverError = "5xx"
    case rateLimited = "429 + Retry-After"
    case reset = "connection reset"
    case truncated = "answer cut short"
    case stall = "stall past the timeout"
    case refused = "413 (not retried)"

    /// Draws a fault: about 55 % of requests succeed (5 % of them slowly), the rest fail in every way.
    static func draw(using generator: inout SeededGenerator) -> Fault {
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<50: .ok
        case 50..<55: .slow
        case 55..<72: .serverError
        case 72..<80: .rateLimited
        case 80..<88: .reset
        case 88..<93: .truncated
        case 93..<99: .stall
        default: .refused
        }
    }
}

/// Counts of injected faults, by kind.
struct FaultCounts: CustomStringConvertible {
    var counts: [Fault: Int] = [:]

    mutating func add(_ fault: Fault) { counts[fault, default: 0] += 1 }

    var injected: Int { counts.filter { $0.key != .ok && $0.key != .slow }.values.reduce(0, +) }

    var description: String {
        Fault.allCases.map { "\($0.rawValue) \(counts[$0] ?? 0)" }.joined(separator: ", ")
    }
}

/// Soak tests: many tasks record while the server (or transport) fails a random share of requests in
/// every way; at the end every message is accounted for exactly once. Each prints its seed and counts;
/// set `RELIABILITY_SEED` to replay a run.
@Suite(.serialized) struct SoakTests {
    /// Checks the accounting every soak test shares, and returns the figures line.
    static func account(
        recorded: [SegmentMessage],
        tally: OutcomeTally,
        returnedAtShutdown: [SegmentMessage],
        counters: SegmentPipeline.Counters,
        acceptedBatches: [[WireMessage]]
    ) -> String {
        let recordedIDs = recorded.map(\.messageID)
        #expect(Set(recordedIDs).count == recordedIDs.count, "every recorded message has its own messageId")
        #expect(counters.accepted == recorded.count)
        // Exactly once across delivered / failed / handed back.
        let ends = tally.ends
        let lost = recordedIDs.filter { ends[$0] == nil }
        let twice = ends.filter { $0.value > 1 }.map(\.key)
        let unknown = Set(ends.keys).subtracting(recordedIDs)
        #expect(lost.isEmpty, "lost: \(lost.prefix(5))")
        #expect(twice.isEmpty, "reported twice: \(twice.prefix(5))")
        #expect(unknown.isEmpty, "reported but never recorded: \(unknown.prefix(5))")
        #expect(tally.delivered.count + tally.failed.count + tally.handedBack.count == recorded.count)
        #expect(counters.delivered == tally.delivered.count)
        #expect(counters.failed == tally.failed.count)
        #expect(counters.handedBack == tally.handedBack.count)
        #expect(returnedAtShutdown.map(\.messageID).sorted() == tally.handedBack.map(\.messageID).sorted())
        // Delivered ids are unique and are the deterministic id of their (response, call).
        let delivered = tally.delivered
        #expect(Set(delivered).count == delivered.count)
        let recordedByID = Dictionary(recorded.map { ($0.messageID, $0) }, uniquingKeysWith: { first, _ in first })
        for id in delivered.prefix(100_000) {
            guard let message = recordedByID[id] else { continue }
            let expected = "refiner-\(message.responseID ?? "?")-\(message.kind.rawValue)"
            if message.messageID != expected {
                Issue.record("messageId \(message.messageID) is not \(expected)")
                break
            }
        }
        // What the server accepted: every delivered message, nothing never recorded, identify before group.
        let acceptedIDs = acceptedBatches.joined().map(\.messageID)
        let acceptedSet = Set(acceptedIDs)
        #expect(
            Set(delivered).isSubset(of: acceptedSet), "a delivered message the server never accepted")
        #expect(acceptedSet.isSubset(of: Set(recordedIDs)))
        #expect(Wire.groupsBeforeTheirIdentify(acceptedBatches).isEmpty, "a group arrived before its identify")
        return "delivered \(tally.delivered.count), failed \(tally.failed.count), handed back "
            + "\(tally.handedBack.count), lost \(lost.count); \(counters.requests) requests, \(tally.retries) retried; "
            + "the server accepted \(acceptedBatches.count) batches, \(acceptedIDs.count - acceptedSet.count) "
            + "messages twice (answers lost in transit; Segment drops them by messageId)"
    }

    /// Records pairs from `tasks` concurrent tasks until `deadline` (or `perTask` pairs each) and returns the
    /// messages accepted.
    ///
    /// With `cancelWhen`, every recording task is cancelled once it returns: a task waiting for room gets
    /// `cancelled` and its unit must not be accepted; a unit whose `record` returned must be.
    static func produce(
        into pipeline: SegmentPipeline,
        tasks: Int,
        perTask: Int,
        until deadline: ContinuousClock.Instant,
        tag: String = "",
        cancelWhen: (@Sendable () async throws -> Void)? = nil
    ) async throws -> (accepted: [SegmentMessage], cancelled: Int) {
        try await withThrowingTaskGroup(of: ([SegmentMessage], Int).self) { group in
            for task in 0..<tasks {
                group.addTask {
                    let builder = try SegmentCallBuilder()
                    var store = InMemoryProfileStore()
                    var accepted: [SegmentMessage] = []
                    var index = 0
                    while index < perTask, ContinuousClock.now < deadline, !Task.isCancelled {
                        let response = Responses.make(
                            "\(tag)t\(task)-r\(index)", user: "user-\(task)-\(index % 40)",
                            account: "account-\(index % 7)")
                        index += 1
                        let (messages, updated) = try builder.process(response, profile: store.profile(for: response))
                        do {
                            try await pipeline.record(messages)
                        } catch let error as SegmentDeliveryError {
                            if error.code == .cancelled { return (accepted, 1) }
                            throw error
                        }
                        store.store(updated, for: response)
                        accepted += messages
                    }
                    return (accepted, 0)
                }
            }
            if let cancelWhen {
                try await cancelWhen()
                group.cancelAll()
            }
            var all: [SegmentMessage] = []
            var cancelled = 0
            for try await (accepted, wasCancelled) in group {
                all += accepted
                cancelled += wasCancelled
            }
            return (all, cancelled)
        }
    }

    @Test func urlSessionAgainstAFaultyLoopbackServerLosesNothing() async throws {
        let seed = SeededGenerator.seed()
        let faults = Locked((generator: SeededGenerator(seed: seed), counts: FaultCounts()))
        let server = try LoopbackHTTPServer { _ in
            let fault = faults.withLock { state -> Fault in
                let fault = Fault.draw(using: &state.generator)
                state.counts.add(fault)
                return fault
            }
            switch fault {
            case .ok: return .status(200, body: "{}")
            case .slow: return .delay(.milliseconds(40), then: .status(200, body: "{}"))
            case .serverError: return .status([500, 502, 503, 504][Int.random(in: 0..<4)], body: "oops")
            case .rateLimited: return .status(429, headerFields: ["Retry-After": "1"])
            case .reset: return .reset
            case .truncated: return .truncate(SegmentResponse(statusCode: 200, body: Array("{\"ok\":true}".utf8)))
            case .stall: return .hold
            case .refused: return .status(413, body: "too large")
            }
        }
        defer { server.stop() }
        var configuration = SegmentPipeline.Configuration(endpoint: SegmentEndpoint(baseURL: server.baseURL))
        configuration.retry = SegmentRetryPolicy(
            baseDelay: .milliseconds(5), maximumDelay: .milliseconds(40), maximumAttempts: 1000,
            maximumRetryDuration: .seconds(120), maximumRetryAfter: .milliseconds(30))
        configuration.batch.maximumMessages = 40
        configuration.queue = SegmentPipeline.QueueLimits(maximumMessages: 800)
        configuration.maximumBatchesInFlight = 6
        configuration.requestTimeout = .milliseconds(250)
        // A grace that lets most of it through, and hands back batches in flight and the store's rest.
        configuration.shutdownGracePeriod = .seconds(3)
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_soak"), transport: URLSessionTransport(), configuration: configuration)
        let collector = await OutcomeTally.collecting(from: pipeline)
        let running = await pipeline.start()

        // A fixed amount of work rather than a fixed time: other tests may keep both cores of the cooperative
        // pool busy for a while, and a time-boxed run could then record nothing.
        let tasks = 8
        let started = ContinuousClock.now
        let recorded = try await Self.produce(
            into: pipeline, tasks: tasks, perTask: 150, until: started + .seconds(600)
        ).accepted
        let returned = await pipeline.shutDown(running)
        let elapsed = ContinuousClock.now - started
        let tally = await collector.value
        let counters = await pipeline.counters
        let figures = Self.account(
            recorded: recorded, tally: tally, returnedAtShutdown: returned, counters: counters,
            acceptedBatches: server.acceptedRequests.map { Wire.messages(in: $0.body) })
        let counts = faults.withLock { $0.counts }
        print(
            "soak (URLSession, loopback) seed \(seed): \(recorded.count) messages from \(tasks) tasks in "
                + "\(elapsed); \(server.requests.count) requests, faults injected \(counts.injected) (\(counts)); "
                + figures)
        #expect(tally.delivered.count > 0)
        #expect(counts.injected > 0)
    }

    /// A script of `count` steps drawn from the fault mix, and the kind of each.
    static func script(
        count: Int = 20_000,
        using generator: inout SeededGenerator
    ) -> (kinds: [Fault], steps: [ScriptedTransport.Step]) {
        var kinds: [Fault] = []
        var script: [ScriptedTransport.Step] = []
        for _ in 0..<count {
            let fault = Fault.draw(using: &generator)
            kinds.append(fault)
            switch fault {
            case .ok: script.append(.status(200))
            case .slow: script.append(.delay(.milliseconds(300), then: .status(200)))
            case .serverError: script.append(.status([500, 502, 503, 504][Int.random(in: 0..<4, using: &generator)]))
            case .rateLimited: script.append(.status(429, headerFields: ["Retry-After": "2"]))
            case .reset: script.append(.connectionFailure)
            case .truncated: script.append(.fail(URLError(.networkConnectionLost)))
            case .stall: script.append(.delay(.seconds(30), then: .timeout))
            case .refused: script.append(.status(413))
            }
        }
        return (kinds, script)
    }

    @Test func scriptedFaultsInVirtualTimeLoseNothing() async throws {
        let seed = SeededGenerator.seed()
        var generator = SeededGenerator(seed: seed)
        let clock = VirtualClock()
        let (kinds, script) = Self.script(using: &generator)
        let transport = ScriptedTransport(script, clock: clock)
        var configuration = SegmentPipeline.Configuration()
        configuration.retry.maximumAttempts = 1000
        configuration.batch.maximumMessages = 20
        configuration.queue = SegmentPipeline.QueueLimits(maximumMessages: 400)
        configuration.maximumBatchesInFlight = 4
        configuration.linger = .zero
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_soak"), transport: transport, configuration: configuration,
            clock: clock, wallClock: clock.wallClock, jitter: { $0 })
        let collector = await OutcomeTally.collecting(from: pipeline)
        let running = await pipeline.start()

        let tasks = 16
        let started = ContinuousClock.now
        let recorded = try await Self.produce(
            into: pipeline, tasks: tasks, perTask: 1500, until: started + .seconds(30)
        ).accepted
        await pipeline.flush()
        let returned = await pipeline.shutDown(running)
        let elapsed = ContinuousClock.now - started
        let tally = await collector.value
        let counters = await pipeline.counters

        // Request i got step i of the script: the answered-2xx ones are what the collector accepted, and
        // every message of a batch refused with 413 failed.
        let requests = await transport.requests
        var accepted: [[WireMessage]] = []
        var refused = 0
        var counts = FaultCounts()
        for (index, request) in requests.enumerated() {
            let kind = index < kinds.count ? kinds[index] : .ok
            counts.add(kind)
            switch kind {
            case .ok, .slow: accepted.append(Wire.messages(in: request.body))
            // A refused batch of several pairs is split in halves between pairs: only a pair refused alone fails.
            case .refused:
                let messages = Wire.messages(in: request.body)
                let responses = Set(messages.map { $0.messageID.split(separator: "-").dropLast().joined() })
                if responses.count == 1 { refused += messages.count }
            default: break
            }
        }
        let figures = Self.account(
            recorded: recorded, tally: tally, returnedAtShutdown: returned, counters: counters,
            acceptedBatches: accepted)
        #expect(
            accepted.joined().map(\.messageID).sorted() == tally.delivered.sorted(),
            "exactly the accepted batches were delivered, once each")
        #expect(tally.failed.count == refused)
        #expect(tally.handedBack.isEmpty)
        print(
            "soak (scripted transport, virtual time) seed \(seed): \(recorded.count) messages from \(tasks) "
                + "tasks in \(elapsed) (\(clock.now.offset) virtual); "
                + "faults injected \(counts.injected) (\(counts)); " + figures)
    }

    /// Recording tasks cancelled while they wait for room: a cancelled `record` accepted nothing, a returned
    /// one accepted its unit, and the accounting still closes.
    @Test func cancelledRecordersAcceptNothingHalfway() async throws {
        let seed = SeededGenerator.seed()
        var generator = SeededGenerator(seed: seed)
        let clock = VirtualClock()
        let (kinds, script) = Self.script(using: &generator)
        // Held shut until every task waits for room, so that the cancellation finds them all waiting.
        let transport = GatedTransport(ScriptedTransport(script, clock: clock))
        var configuration = SegmentPipeline.Configuration()
        configuration.retry.maximumAttempts = 1000
        configuration.batch.maximumMessages = 20
        configuration.queue = SegmentPipeline.QueueLimits(maximumMessages: 100)
        configuration.maximumBatchesInFlight = 2
        configuration.linger = .zero
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_soak"), transport: transport, configuration: configuration,
            clock: clock, wallClock: clock.wallClock, jitter: { $0 })
        let collector = await OutcomeTally.collecting(from: pipeline)
        let running = await pipeline.start()
        let tasks = 32
        let rounds = 20
        var recorded: [SegmentMessage] = []
        var cancelled = 0
        for round in 0..<rounds {
            await transport.close()
            let (accepted, cancelledNow) = try await Self.produce(
                into: pipeline, tasks: tasks, perTask: .max, until: .now + .seconds(60), tag: "c\(round)",
                cancelWhen: {
                    while await pipeline.counters.waitingToRecord < tasks {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                })
            recorded += accepted
            cancelled += cancelledNow
            await transport.open()
            await pipeline.flush()
        }
        let returned = await pipeline.shutDown(running)
        let tally = await collector.value
        let counters = await pipeline.counters
        let accepted = await transport.inner.requests.enumerated().compactMap { index, request -> [WireMessage]? in
            index >= kinds.count || kinds[index] == .ok || kinds[index] == .slow ? Wire.messages(in: request.body) : nil
        }
        let figures = Self.account(
            recorded: recorded, tally: tally, returnedAtShutdown: returned, counters: counters,
            acceptedBatches: accepted)
        // Which tasks are still waiting when the cancellation lands is up to the scheduler (a task admitted
        // just before it returns normally); what must hold is the accounting above, and that cancelling
        // waiters cancels them.
        #expect(cancelled > 0 && cancelled <= tasks * rounds, "tasks were cancelled while they waited for room")
        #expect(counters.waitingToRecord == 0)
        print(
            "soak (cancelled recorders, virtual time) seed \(seed): \(recorded.count) messages from \(tasks) "
                + "tasks in \(rounds) rounds, \(cancelled) cancelled while waiting for room; " + figures)
    }
}

/// A transport that holds every request until it is opened, then passes them on.
actor GatedTransport: SegmentTransport {
    let inner: ScriptedTransport
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ inner: ScriptedTransport) {
        self.inner = inner
    }

    func close() {
        isOpen = false
    }

    func open() {
        isOpen = true
        for continuation in waiting { continuation.resume() }
        waiting = []
    }

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        if !isOpen { await withCheckedContinuation { waiting.append($0) } }
        return try await inner.send(request)
    }
}
