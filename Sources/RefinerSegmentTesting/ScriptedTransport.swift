import RefinerSegment

/// A transport that plays a script: answers and faults in order, one step per request, then a default.
///
/// ```swift
/// let transport = ScriptedTransport([.status(500), .status(429, headerFields: ["Retry-After": "3"]),
///                                    .timeout, .status(200)])
/// ```
///
/// Every request is recorded. Delays use the clock given at creation, so they pass in virtual time.
public actor ScriptedTransport: SegmentTransport {
    /// One scripted answer or fault.
    public indirect enum Step: Sendable {
        /// Return this response.
        case respond(SegmentResponse)
        /// Throw this error, as a transport does when there is no response.
        case fail(any Error)
        /// Wait on the clock, then play the next step.
        case delay(Duration, then: Step)
        /// Never answer; throw `CancellationError` once the calling task is cancelled.
        case hang

        /// Return a response with this status, headers and body text.
        public static func status(_ statusCode: Int, headerFields: [String: String] = [:], body: String = "") -> Step {
            .respond(SegmentResponse(statusCode: statusCode, headerFields: headerFields, body: Array(body.utf8)))
        }

        /// Throw ``ScriptedTransport/TimeoutError``, as a transport whose request timed out does.
        public static var timeout: Step { .fail(TimeoutError()) }

        /// Throw ``ScriptedTransport/ConnectionError``, as a transport that could not connect does.
        public static var connectionFailure: Step { .fail(ConnectionError()) }
    }

    /// What ``Step/timeout`` throws.
    public struct TimeoutError: Error, Hashable, CustomStringConvertible {
        /// Creates the error.
        public init() {}
        /// `the request timed out`.
        public var description: String { "the request timed out" }
    }

    /// What ``Step/connectionFailure`` throws.
    public struct ConnectionError: Error, Hashable, CustomStringConvertible {
        /// Creates the error.
        public init() {}
        /// `could not connect to the server`.
        public var description: String { "could not connect to the server" }
    }

    private var script: [Step]
    private var position = 0
    private let whenDone: Step
    private let sleep: @Sendable (Duration) async throws -> Void
    /// Every request received, in order.
    public private(set) var requests: [SegmentRequest] = []

    /// Creates a transport that plays `script`, then `whenDone` (200 by default) for every later request.
    public init<C: Clock>(_ script: [Step], whenDone: Step = .status(200), clock: C = ContinuousClock())
    where C.Duration == Duration {
        self.script = script
        self.whenDone = whenDone
        self.sleep = { try await clock.sleep(for: $0) }
    }

    /// Appends steps to the script.
    public func append(_ steps: [Step]) {
        script.append(contentsOf: steps)
    }

    /// Plays the next step.
    public func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        requests.append(request)
        let step = position < script.count ? script[position] : whenDone
        position += 1
        return try await play(step)
    }

    private func play(_ step: Step) async throws -> SegmentResponse {
        switch step {
        case .respond(let response):
            return response
        case .fail(let error):
            throw error
        case .delay(let duration, let next):
            try await sleep(duration)
            return try await play(next)
        case .hang:
            let stream = AsyncStream<Never> { _ in }
            for await _ in stream {}
            throw CancellationError()
        }
    }
}
