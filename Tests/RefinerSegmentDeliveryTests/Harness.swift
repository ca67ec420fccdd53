import Foundation
import RefinerSegment
import RefinerSegmentTesting

/// A pipeline on a scripted transport and a virtual clock, running, and what it reported.
///
/// The linger and the shutdown grace period are zero unless a test sets them, so batches go at once and
/// ``shutDown()`` stops at once.
struct Harness {
    static let writeKey = WriteKey("wk_secret_123")

    let clock: VirtualClock
    let transport: ScriptedTransport
    let pipeline: SegmentPipeline
    let outcomes: AsyncStream<SegmentOutcome>
    /// The pipeline's `run()`; it ends at ``shutDown()``.
    let running: Task<Void, any Error>

    init(
        _ script: [ScriptedTransport.Step] = [],
        whenDone: ScriptedTransport.Step = .status(200),
        mode: VirtualClock.Mode = .automatic,
        configure: (inout SegmentPipeline.Configuration) -> Void = { _ in }
    ) async throws {
        clock = VirtualClock(mode: mode)
        transport = ScriptedTransport(script, whenDone: whenDone, clock: clock)
        var configuration = SegmentPipeline.Configuration()
        configuration.linger = .zero
        configuration.shutdownGracePeriod = .zero
        configure(&configuration)
        let pipeline = try SegmentPipeline(
            writeKey: Self.writeKey, transport: transport, configuration: configuration,
            clock: clock, wallClock: clock.wallClock, jitter: { $0 })
        self.pipeline = pipeline
        outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        running = Task { try await pipeline.run() }
    }

    /// Shuts the pipeline down gracefully, waits for `run()` to return, and returns what was handed back.
    @discardableResult
    func shutDown() async -> [SegmentMessage] {
        pipeline.triggerGracefulShutdown()
        _ = await running.result
        return await pipeline.handedBackMessages
    }

    /// Shuts the pipeline down and returns every outcome it reported.
    func finish() async -> [SegmentOutcome] {
        await shutDown()
        var all: [SegmentOutcome] = []
        for await outcome in outcomes { all.append(outcome) }
        return all
    }

    /// The bodies the transport received, parsed.
    func bodies() async throws -> [[String: Any]] {
        try await transport.requests.map { request in
            try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] ?? [:]
        }
    }

    /// The messageIds of each request, in order.
    func batches() async throws -> [[String]] {
        try await bodies().map { body in
            (body["batch"] as? [[String: Any]] ?? []).compactMap { $0["messageId"] as? String }
        }
    }
}

enum Messages {
    /// An identify and its group, built by the library.
    static func pair(_ responseID: String) throws -> [SegmentMessage] {
        let response = SurveyResponse(
            id: responseID, completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "onboarding"),
            user: User(id: "user-\(responseID)", email: "john.doe@example.com"), account: Account(id: "account-1"),
            answers: [Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO")])
        var store = InMemoryProfileStore()
        return try store.process(response, with: SegmentCallBuilder())
    }

    /// A track message of exactly `size` bytes (at least 60).
    static func sized(_ id: String, size: Int) -> SegmentMessage {
        let head = #"{"type":"track","event":"e","userId":"u","messageId":""# + id + #"","p":""#
        let tail = #""}"#
        let padding = String(repeating: "x", count: max(0, size - head.utf8.count - tail.utf8.count))
        return SegmentMessage(kind: .track, messageID: id, json: Array((head + padding + tail).utf8))
    }
}

extension SegmentOutcome {
    /// A short name for comparing sequences of outcomes.
    var name: String {
        switch self {
        case .delivered: "delivered"
        case .retrying: "retrying"
        case .failed: "failed"
        case .handedBack: "handedBack"
        }
    }

    var messages: [String] { messageIDs }

    var reason: SegmentDeliveryError? {
        switch self {
        case .retrying(_, _, _, let reason), .failed(_, let reason): reason
        default: nil
        }
    }
}
