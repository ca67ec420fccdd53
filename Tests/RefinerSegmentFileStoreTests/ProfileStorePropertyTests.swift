import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentTesting
import Testing

/// 16 tasks record 10,000 shuffled responses (many users, few accounts, repeated questions, equal
/// completion times, duplicates) through one store and one pipeline: the final profiles, and the last
/// identify and group sent per user and account, equal a last-writer-wins oracle computed by sorting.
@Suite(.serialized) struct ProfileStorePropertyTests {
    enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
        case memory, file
        var testDescription: String { rawValue }
    }

    /// A seeded SplitMix64, so a failure can be replayed (`PROFILE_SEED`).
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let seed: UInt64 = ProcessInfo.processInfo.environment["PROFILE_SEED"].flatMap(UInt64.init) ?? 20_261_201

    /// 9,000 distinct responses and 1,000 duplicates of them, shuffled.
    static func responses(using random: inout Random) -> [SurveyResponse] {
        var responses: [SurveyResponse] = []
        for index in 0..<9000 {
            let userNumber = Int.random(in: 0..<400, using: &random)
            // The same string as a user id and as an anonymous id: two different users.
            let user =
                userNumber % 5 == 0
                ? User(
                    anonymousID: "x\(userNumber / 5)",
                    email: Bool.random(using: &random) ? "a\(index)@example.com" : nil)
                : User(id: "x\(userNumber)", email: Bool.random(using: &random) ? "u\(index)@example.com" : nil)
            let account = Int.random(in: 0..<6, using: &random)
            var answers: [Answer] = []
            for question in Set(
                (0..<Int.random(in: 1...4, using: &random)).map { _ in Int.random(in: 0..<12, using: &random) }
            ).sorted() {
                let value: AnswerValue? =
                    switch Int.random(in: 0..<6, using: &random) {
                    case 0: nil  // skipped
                    case 1: .integer(Int64.random(in: 0...10, using: &random))
                    case 2: .strings(["a", "b"].shuffled(using: &random))
                    default: .string("v\(Int.random(in: 0..<50, using: &random))")
                    }
                answers.append(
                    Answer(
                        question: Question(
                            id: "q\(question)", text: "Q\(question)?", propertyName: "p\(question)",
                            attribution: question < 6 ? .user : .account),
                        value: value))
            }
            responses.append(
                SurveyResponse(
                    id: "r\(index)",
                    // Few distinct times: many ties, settled by the response id.
                    completedAt: Date(
                        timeIntervalSince1970: 1_795_600_000 + Double(Int.random(in: 0..<200, using: &random))),
                    survey: Survey(id: "s"), user: user,
                    account: account == 0 ? nil : Account(id: "acct-\(account)"), answers: answers))
        }
        for _ in 0..<1000 { responses.append(responses[Int.random(in: 0..<9000, using: &random)]) }
        responses.shuffle(using: &random)
        return responses
    }

    struct Expected: Equatable {
        var users: [String: [String: AnswerValue]] = [:]
        var emails: [String: String] = [:]
        var accounts: [String: [String: AnswerValue]] = [:]
    }

    /// Sort by (completion time, response id) and let each answer overwrite: last writer wins.
    static func oracle(_ responses: [SurveyResponse]) -> Expected {
        let sorted = responses.sorted {
            $0.completedAt != $1.completedAt
                ? $0.completedAt < $1.completedAt : $0.id.utf8.lexicographicallyPrecedes($1.id.utf8)
        }
        var expected = Expected()
        for response in sorted {
            let user = userKey(response.user)
            expected.users[user, default: [:]].reserveCapacity(0)
            if let email = response.user.email { expected.emails[user] = email }
            if let account = response.account { expected.accounts[account.id, default: [:]].reserveCapacity(0) }
            for answer in response.answers {
                guard let value = answer.value else { continue }
                let key = "refiner_" + answer.question.propertyName!
                if answer.question.attribution == .account, let account = response.account {
                    expected.accounts[account.id]![key] = value
                } else {
                    expected.users[user]![key] = value
                }
            }
        }
        return expected
    }

    static func userKey(_ user: User) -> String {
        user.id.map { "user " + $0 } ?? "anonymous " + user.anonymousID!
    }

    static func values(_ traits: CollectedTraits) -> [String: AnswerValue] {
        var values: [String: AnswerValue] = [:]
        for entry in traits { values[entry.key] = entry.value }
        return values
    }

    static func profileStore(_ kind: StoreKind, directory: URL) throws -> any ProfileStore {
        switch kind {
        case .memory: MemoryProfileStore()
        case .file: try FileProfileStore(path: directory.appendingPathComponent("profiles").path)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentRecordingMatchesTheOracle(kind: StoreKind) async throws {
        var random = Random(state: Self.seed)
        let responses = Self.responses(using: &random)
        let expected = Self.oracle(responses)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "profile-property-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try Self.profileStore(kind, directory: directory)

        let clock = VirtualClock()
        let transport = ScriptedTransport([], whenDone: .status(200), clock: clock)
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk_property"), transport: transport, clock: clock, wallClock: clock.wallClock,
            jitter: { $0 })
        let running = Task { try await pipeline.run() }
        let builder = try SegmentCallBuilder()
        // Answers come back after a random number of scheduling turns, as from a store under load, so that
        // two recordings of one user finish their applies in any order unless something keeps them in line.
        let jittery = JitteryStore(base: store, seed: Self.seed)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<16 {
                group.addTask {
                    for index in stride(from: task, to: responses.count, by: 16) {
                        try await pipeline.record(responses[index], profiles: jittery, builder: builder)
                    }
                }
            }
            try await group.waitForAll()
        }
        await pipeline.flush()
        pipeline.triggerGracefulShutdown()
        try await running.value

        // The stored profiles.
        var stored = Expected()
        for user in expected.users.keys {
            let parts = user.split(separator: " ", maxSplits: 1).map(String.init)
            let key: ProfileKey = parts[0] == "user" ? .user(parts[1]) : .anonymousUser(parts[1])
            let profile = try #require(try await Self.user(key, in: store))
            stored.users[user] = Self.values(profile.traits)
            if let email = profile.email { stored.emails[user] = email }
        }
        for account in expected.accounts.keys {
            stored.accounts[account] = Self.values(try #require(try await Self.account(account, in: store)).traits)
        }
        #expect(stored == expected)

        // The last identify and group sent for each user and account, in sending order; and along the way,
        // every call of a user or account carries every trait key of the one sent before it (a call built on an
        // older profile never comes after one built on a newer).
        var sent = Expected()
        var lastKeys: [String: Set<String>] = [:]
        var regressions: [String] = []
        func follow(_ record: String, _ keys: Set<String>) {
            if let before = lastKeys[record], !before.isSubset(of: keys) {
                regressions.append("\(record) lost \(before.subtracting(keys).sorted())")
            }
            lastKeys[record] = keys
        }
        for request in await transport.requests {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            for message in try #require(body["batch"] as? [[String: Any]]) {
                let traits = try #require(message["traits"] as? [String: Any])
                var values = try Self.answerValues(traits)
                if message["type"] as? String == "identify" {
                    let user =
                        (message["userId"] as? String).map { "user " + $0 } ?? "anonymous "
                        + (message["anonymousId"] as! String)
                    if case .string(let email)? = values.removeValue(forKey: "refiner_email") {
                        sent.emails[user] = email
                    } else {
                        sent.emails[user] = nil
                    }
                    sent.users[user] = values
                    follow(user, Set(traits.keys))
                } else if message["type"] as? String == "group" {
                    let account = try #require(message["groupId"] as? String)
                    sent.accounts[account] = values
                    follow("account " + account, Set(traits.keys))
                }
            }
        }
        #expect(sent == expected)
        #expect(
            regressions.isEmpty,
            "\(regressions.count) calls built on older profiles came later: \(regressions.prefix(5))")
        #expect(store.recordingOrder.heldCount == 0)
    }

    static func user(_ key: ProfileKey, in store: any ProfileStore) async throws -> UserProfile? {
        if let store = store as? MemoryProfileStore { return await store.profile(key).user }
        return try (store as! FileProfileStore).user(key)
    }

    static func account(_ id: String, in store: any ProfileStore) async throws -> AccountProfile? {
        if let store = store as? MemoryProfileStore { return await store.profile(.account(id)).account }
        return try (store as! FileProfileStore).account(id: id)
    }

    /// Trait values read back from JSON (the generator makes strings, integers and lists of strings).
    static func answerValues(_ traits: [String: Any]) throws -> [String: AnswerValue] {
        try traits.mapValues { value -> AnswerValue in
            if let text = value as? String { return .string(text) }
            if let list = value as? [String] { return .strings(list) }
            if let number = value as? NSNumber { return .integer(number.int64Value) }
            throw CocoaError(.coderInvalidValue)
        }
    }
}

/// A profile store that passes applies on to another and answers after a random number of `Task.yield()`s.
struct JitteryStore: ProfileStore {
    let base: any ProfileStore
    let random: Locked<ProfileStorePropertyTests.Random>

    init(base: any ProfileStore, seed: UInt64) {
        self.base = base
        self.random = Locked(ProfileStorePropertyTests.Random(state: seed ^ 0xA5A5))
    }

    var recordingOrder: ProfileRecordingOrder { base.recordingOrder }

    func apply(_ changes: ProfileChanges) async throws -> CollectedProfile {
        let profile = try await base.apply(changes)
        let turns = random.withLock { Int.random(in: 0..<8, using: &$0) }
        for _ in 0..<turns { await Task.yield() }
        return profile
    }
}
