import Foundation
import RefinerSegment
import RefinerSegmentTesting

/// SplitMix64: a small seeded generator, so that a fault mix that finds a bug can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The seed for a run: `RELIABILITY_SEED` from the environment when set (to replay a failure), else
    /// a fresh one.
    static func seed() -> UInt64 {
        if let text = ProcessInfo.processInfo.environment["RELIABILITY_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...UInt64.max)
    }
}

/// A message as the server saw it in a batch body.
struct WireMessage: Hashable {
    var messageID: String
    var type: String
    var userID: String?
}

enum Wire {
    /// The messages of a batch body, in order.
    static func messages(in body: [UInt8]) -> [WireMessage] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let batch = object["batch"] as? [[String: Any]]
        else { return [] }
        return batch.map {
            WireMessage(
                messageID: $0["messageId"] as? String ?? "", type: $0["type"] as? String ?? "",
                userID: $0["userId"] as? String)
        }
    }

    /// The identifiers of groups whose identify (same response) did not come before them in the record of
    /// batches; empty when every identify arrived first.
    static func groupsBeforeTheirIdentify(_ batches: [[WireMessage]]) -> [String] {
        var seenIdentifies: Set<String> = []
        var offenders: [String] = []
        for message in batches.joined() {
            guard message.messageID.hasPrefix("refiner-") else { continue }
            let response = String(message.messageID.dropFirst("refiner-".count).dropLast(message.type.count + 1))
            switch message.type {
            case "identify": seenIdentifies.insert(response)
            case "group" where !seenIdentifies.contains(response): offenders.append(message.messageID)
            default: break
            }
        }
        return offenders
    }
}

enum Responses {
    static let completedAt = Date(timeIntervalSince1970: 1_795_600_000)

    /// A completed response of user `user` in account `account`, with a user and an account answer.
    static func make(_ id: String, user: String, account: String) -> SurveyResponse {
        SurveyResponse(
            id: id, completedAt: completedAt, survey: Survey(id: "onboarding", name: "Onboarding"),
            user: User(id: user, email: "\(user)@example.com"), account: Account(id: account),
            answers: [
                Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO"),
                Answer(
                    question: Question(
                        id: "q2", text: "How many employees?", propertyName: "employee_count",
                        attribution: .account),
                    value: "1000+"),
            ])
    }
}

/// What the outcome streams reported, tallied per message.
struct OutcomeTally {
    /// Subscribes to the pipeline's outcomes now (before anything is recorded) and tallies them until
    /// shutdown ends the stream.
    static func collecting(from pipeline: SegmentPipeline) async -> Task<OutcomeTally, Never> {
        let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
        return Task {
            var tally = OutcomeTally()
            for await outcome in outcomes { tally.add(outcome) }
            return tally
        }
    }

    /// The messageIds delivered (a delivered outcome carries ids only).
    var delivered: [String] = []
    var failed: [SegmentMessage] = []
    var handedBack: [SegmentMessage] = []
    var retries = 0

    mutating func add(_ outcome: SegmentOutcome) {
        switch outcome {
        case .delivered(let messageIDs, _): delivered += messageIDs
        case .failed(let messages, _): failed += messages
        case .handedBack(let messages): handedBack += messages
        case .retrying: retries += 1
        }
    }

    /// Every message that reached an end, with how many times.
    var ends: [String: Int] {
        var counts: [String: Int] = [:]
        for id in delivered + failed.map(\.messageID) + handedBack.map(\.messageID) { counts[id, default: 0] += 1 }
        return counts
    }
}

extension SegmentPipeline {
    /// Starts `run()` for a test; end it with ``shutDown(_:)``.
    func start() -> Task<Void, any Error> {
        Task { try await self.run() }
    }

    /// Shuts down gracefully, waits for `run()` to return, and returns what was handed back.
    @discardableResult
    func shutDown(_ running: Task<Void, any Error>) async -> [SegmentMessage] {
        triggerGracefulShutdown()
        _ = await running.result
        return handedBackMessages
    }
}

extension SegmentOutcome {
    /// The reason of a retry or a failure.
    var reason: SegmentDeliveryError? {
        switch self {
        case .retrying(_, _, _, let reason), .failed(_, let reason): reason
        default: nil
        }
    }
}
