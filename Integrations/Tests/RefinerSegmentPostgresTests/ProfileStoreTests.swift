import Foundation
import PostgresNIO
import RefinerSegment
import RefinerSegmentPostgres
import Testing

/// The profile store's single-upsert merge against a real server, in process and from three processes.
@Suite(.serialized, .enabled(if: TestDatabase.isConfigured, TestDatabase.skipReason))
struct ProfileStoreTests {
    static let role = Question(id: "q1", text: "What is your job role?")
    static let team = Question(id: "q2", text: "How big is your team?")
    static let score = Question(id: "q3", text: "How likely are you to recommend us?")
    static let tools = Question(id: "q4", text: "Which tools do you use?")
    static let happy = Question(id: "q5", text: "Are you happy?")
    static let industry = Question(id: "q6", text: "Which industry?", propertyName: "industry", attribution: .account)
    static let employees = Question(id: "q7", text: "Employees?", propertyName: "employees", attribution: .account)

    static func response(
        _ id: String,
        at milliseconds: Int64,
        user: String,
        email: String? = nil,
        account: String? = nil,
        _ answers: [(Question, AnswerValue?)]
    ) -> SurveyResponse {
        SurveyResponse(
            id: id,
            completedAt: Date(timeIntervalSince1970: Double(milliseconds) / 1000),
            survey: Survey(id: "s", name: "Survey"),
            user: User(id: user, email: email),
            account: account.map { Account(id: $0) },
            answers: answers.map { Answer(question: $0.0, value: $0.1) }
        )
    }

    @Test func theLaterAnswerWinsInAnyOrderAndTwice() async throws {
        try await TestDatabase.withSchema { client, _ in
            let store = PostgresProfileStore(client: client, logger: TestDatabase.logger)
            let builder = try SegmentCallBuilder()
            let older = Self.response(
                "r1", at: 1_000, user: "u", email: "old@example.com", account: "a",
                [(Self.role, "CEO"), (Self.team, 10), (Self.industry, "retail")]
            )
            let newer = Self.response(
                "r2", at: 2_000, user: "u", email: "new@example.com", account: "a",
                [(Self.role, "CTO"), (Self.tools, .strings(["git", "swift"])), (Self.team, nil)]
            )
            let other = Self.response(
                "r3", at: 1_500, user: "v", account: "a", [(Self.employees, 1000), (Self.score, .decimal(9.5))]
            )
            _ = try await store.apply(newer, builder: builder)
            _ = try await store.apply(other, builder: builder)
            let merged = try await store.apply(older, builder: builder)
            _ = try await store.apply(older, builder: builder)
            #expect(merged.userTraits["refiner_what_is_your_job_role"] == "CTO")
            #expect(merged.userTraits["refiner_how_big_is_your_team"] == 10)  // skipped later: the earlier stays
            #expect(merged.userTraits["refiner_which_tools_do_you_use"] == .strings(["git", "swift"]))
            #expect(merged.email == "new@example.com")
            // The account collects from both users; the other user's traits stay theirs.
            #expect(merged.accountTraits == ["refiner_industry": "retail", "refiner_employees": 1000])
            #expect(merged.userTraits["refiner_how_likely_are_you_to_recommend_us"] == nil)
            let again = try await store.profile(user: .user("u"), account: .account("a"))
            #expect(again == merged)
            let v = try await store.profile(user: .user("v"), account: nil)
            #expect(v.userTraits == ["refiner_how_likely_are_you_to_recommend_us": .decimal(9.5)])
        }
    }

    @Test func everyKindOfValueReadsBackExactly() async throws {
        try await TestDatabase.withSchema { client, _ in
            let store = PostgresProfileStore(client: client, logger: TestDatabase.logger)
            let builder = try SegmentCallBuilder()
            let values: [(Question, AnswerValue?)] = [
                (Self.role, "quote \" backslash \\ line\nemoji 🎉 \u{2028}"), (Self.team, .integer(.max)),
                (Self.score, .decimal(0.1 + 0.2)), (Self.tools, .strings([])), (Self.happy, false),
                (Question(id: "q8", text: "When?"), .date(Date(timeIntervalSince1970: 1_795_000_000.123))),
            ]
            let merged = try await store.apply(Self.response("r", at: 5, user: "u", values), builder: builder)
            // With the answer times: the store's merged profile is the core's pure merge, value for value.
            let expected = try builder.apply(Self.response("r", at: 5, user: "u", values), to: CollectedProfile())
            #expect(merged == expected)
        }
    }

    @Test func threeInstancesOfEightTasksAgreeWithTheLastWriterWinsOracle() async throws {
        let url = try #require(TestDatabase.url)
        try await TestDatabase.withSchema { client, schema in
            let builder = try SegmentCallBuilder()
            var generator = SystemRandomNumberGenerator()
            let roles: [AnswerValue?] = ["CEO", "CTO", "Engineer", nil]
            var responses: [SurveyResponse] = []
            for index in 0..<600 {
                let user = "u\(index % 24)"
                // Few distinct times, so that many answers tie on time and the response id decides.
                let time = Int64.random(in: 0..<40, using: &generator) * 1000
                responses.append(
                    Self.response(
                        "r\(index)", at: time, user: user,
                        email: Bool.random(using: &generator) ? "\(user)+\(index)@example.com" : nil,
                        account: "a\(index % 24 % 5)",
                        [
                            (Self.role, roles.randomElement(using: &generator)!),
                            (Self.team, .integer(Int64.random(in: 1...500, using: &generator))),
                            (Self.score, Bool.random(using: &generator) ? .decimal(Double(index) / 7) : nil),
                            (
                                Self.industry,
                                ["retail", "banking", "health"].randomElement(using: &generator).map { .string($0) }
                            ),
                            (Self.employees, .integer(Int64(index))),
                        ]
                    )
                )
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(schema).jsonl")
            defer { try? FileManager.default.removeItem(at: file) }
            let encoder = JSONEncoder()
            let lines = try responses.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
            try Data(lines.joined(separator: "\n").utf8).write(to: file)

            // Three processes, each applying every response in its own shuffled order with eight tasks.
            let processes = try (1...3).map { seed in
                try DrillProcess(["profiles", url, schema, "input=\(file.path)", "tasks=8", "seed=\(seed)"])
            }
            for process in processes {
                let status = await process.wait()
                #expect(status == 0, "\(process.errorText)")
                #expect(process.events.last?["responses"] as? Double == 600)
            }

            // The oracle: every response applied on its own, in (completedAt, id) order, later ones overwriting;
            // on the responses as the processes read them (an integral decimal reads back as an integer).
            let decoder = JSONDecoder()
            let read = try lines.map { try decoder.decode(SurveyResponse.self, from: Data($0.utf8)) }
            let ordered = read.sorted {
                $0.completedAt != $1.completedAt
                    ? $0.completedAt < $1.completedAt : $0.id.utf8.lexicographicallyPrecedes($1.id.utf8)
            }
            var users: [String: (traits: Traits, email: String?)] = [:]
            var accounts: [String: Traits] = [:]
            for response in ordered {
                let own = try builder.apply(response, to: CollectedProfile())
                let user = response.user.id!
                users[user, default: (Traits(), nil)].traits.merge(own.userTraits)
                if let email = own.email { users[user]!.email = email }
                accounts[response.account!.id, default: Traits()].merge(own.accountTraits)
            }
            let store = PostgresProfileStore(client: client, logger: TestDatabase.logger)
            for (user, expected) in users {
                let account = "a\(Int(user.dropFirst())! % 5)"
                let stored = try await store.profile(user: .user(user), account: .account(account))
                #expect(stored.userTraits == expected.traits, "user \(user)")
                #expect(stored.email == expected.email, "email of \(user)")
                #expect(stored.accountTraits == accounts[account], "account \(account)")
            }
        }
    }
}
