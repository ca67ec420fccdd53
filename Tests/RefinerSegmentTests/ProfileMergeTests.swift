import Foundation
import RefinerSegment
import Testing

/// Collected profiles merge by answer time: order, repetition and late retries change nothing.
struct ProfileMergeTests {
    private let builder = try! SegmentCallBuilder()

    private func response(
        _ id: String,
        at seconds: Double,
        user: User = User(id: "u1"),
        account: String? = "a1",
        _ answers: [(property: String, value: AnswerValue?, attribution: Attribution)]
    ) -> SurveyResponse {
        SurveyResponse(
            id: id, completedAt: Date(timeIntervalSince1970: 1_795_600_000 + seconds), survey: Survey(id: "s"),
            user: user, account: account.map { Account(id: $0) },
            answers: answers.enumerated().map { index, answer in
                Answer(
                    question: Question(
                        id: "q\(index)-\(answer.property)", text: "Question?", propertyName: answer.property,
                        attribution: answer.attribution),
                    value: answer.value)
            })
    }

    @Test func aLateRetryChangesNoTrait() throws {
        var store = InMemoryProfileStore()
        let newer = response(
            "r2", at: 60, user: User(id: "u1", email: "new@example.com"),
            [
                ("role", "CTO", .user), ("industry", "retail", .account),
            ])
        let older = response(
            "r1", at: 0, user: User(id: "u1", email: "old@example.com"),
            [
                ("role", "CEO", .user), ("industry", "banking", .account), ("team", "10+", .user),
            ])
        _ = try store.process(newer, with: builder)
        let before = store
        let messages = try store.process(older, with: builder)  // the retry arrives last
        #expect(store.users["u1"]?.traits["refiner_role"] == "CTO")
        #expect(store.users["u1"]?.email == "new@example.com")
        #expect(store.accounts["a1"]?.traits["refiner_industry"] == "retail")
        // The only change is the trait the newer response never set.
        #expect(store.users["u1"]?.traits["refiner_team"] == "10+")
        #expect(before.users["u1"]?.traits["refiner_team"] == nil)
        let identify = try jsonObject(messages[0])["traits"] as? [String: Any]
        #expect(identify?["refiner_role"] as? String == "CTO")
        #expect(identify?["refiner_email"] as? String == "new@example.com")
    }

    @Test func equalTimesAreSettledByResponseID() throws {
        let first = response("r-a", at: 0, [("role", "CEO", .user)])
        let second = response("r-b", at: 0, [("role", "CTO", .user)])
        for order in [[first, second], [second, first]] {
            var store = InMemoryProfileStore()
            for response in order { _ = try store.process(response, with: builder) }
            #expect(store.users["u1"]?.traits["refiner_role"] == "CTO", "r-b sorts after r-a")
        }
    }

    @Test func anyOrderAnyNumberOfTimesGivesTheSameProfilesAndCalls() throws {
        var responses: [SurveyResponse] = []
        for index in 0..<60 {
            let answers: [(property: String, value: AnswerValue?, attribution: Attribution)] = [
                ("p\(index % 4)", .integer(Int64(index)), .user), ("g\(index % 3)", .string("v\(index)"), .account),
            ]
            responses.append(
                response(
                    "r\(index)", at: Double(index % 7), user: User(id: "u\(index % 5)"), account: "a\(index % 2)",
                    answers))
        }
        var generator = SystemRandomNumberGenerator()
        var reference = InMemoryProfileStore()
        for response in responses { _ = try reference.process(response, with: builder) }
        let finalCalls = try responses.map { try builder.makeMessages(for: $0, profile: reference.profile(for: $0)) }
        for _ in 0..<5 {
            var store = InMemoryProfileStore()
            for response in (responses + responses.prefix(20)).shuffled(using: &generator) {
                _ = try store.process(response, with: builder)
            }
            #expect(store == reference)
            // Replayed once everything is in, each response builds the same bytes whatever came first.
            var replayed: [[SegmentMessage]] = []
            for response in responses { replayed.append(try store.process(response, with: builder)) }
            #expect(replayed == finalCalls)
        }
    }

    @Test func replayingAWholeInputTwiceGivesTheSameBytes() throws {
        let responses = (0..<40).map { index -> SurveyResponse in
            let answers: [(property: String, value: AnswerValue?, attribution: Attribution)] = [
                ("p\(index % 5)", .string("v\(index)"), .user), ("g", .integer(Int64(index)), .account),
            ]
            return response("r\(index)", at: Double(40 - index), user: User(id: "u\(index % 3)"), answers)
        }
        func run(_ passes: Int) throws -> [[UInt8]] {
            var store = InMemoryProfileStore()
            var output: [[UInt8]] = []
            for _ in 0..<passes {
                output = []
                for response in responses { output += try store.process(response, with: builder).map(\.json) }
            }
            return output
        }
        #expect(try run(1) == run(1), "two fresh runs print the same bytes")
        #expect(try run(2) == run(3), "a second replay over the same profiles prints what the first replay did")
    }

    @Test func anAnonymousIDNeverMeetsAUserID() throws {
        var store = InMemoryProfileStore()
        _ = try store.process(
            response("r1", at: 0, user: User(anonymousID: "x"), account: nil, [("p", "anon", .user)]), with: builder)
        let messages = try store.process(
            response("r2", at: 1, user: User(id: "anonymous:x"), account: nil, [("q", "named", .user)]), with: builder)
        let traits = try jsonObject(messages[0])["traits"] as? [String: Any]
        #expect(traits?["refiner_p"] == nil, "the anonymous user's trait stays with the anonymous user")
        #expect(store.anonymousUsers["x"]?.traits["refiner_p"] == "anon")
        #expect(store.users["anonymous:x"]?.traits["refiner_q"] == "named")
        #expect(ProfileKey.user("x").storageKey != ProfileKey.anonymousUser("x").storageKey)
    }

    @Test func mergingIsCommutativeAndIdempotentOnValues() {
        let early = AnswerTime(microseconds: 1, responseID: "a")
        let late = AnswerTime(microseconds: 2, responseID: "a")
        let tie = AnswerTime(microseconds: 2, responseID: "a")
        var left = CollectedTraits()
        left.merge("k", value: "old", answeredAt: early)
        left.merge("t", value: "x", answeredAt: tie)
        var right = CollectedTraits()
        right.merge("k", value: "new", answeredAt: late)
        right.merge("t", value: "y", answeredAt: tie)  // a reused response id: the larger value wins either way
        #expect(left.merging(right) == right.merging(left))
        #expect(left.merging(right).merging(right) == left.merging(right))
        #expect(left.merging(right)["k"] == "new")
        #expect(left.merging(right)["t"] == "y")
    }

    @Test(arguments: [
        Int64.min, -62_167_219_200_000_000, -1, 0, 1, 1_795_169_700_123_456, 253_402_300_799_999_999,
    ])
    func answerTimesReadBackExactly(microseconds: Int64) throws {
        let time = AnswerTime(microseconds: microseconds, responseID: "r")
        let json = try JSONEncoder().encode(CollectedTraits(["k": "v"], answeredAt: time))
        let decoded = try JSONDecoder().decode(CollectedTraits.self, from: json)
        #expect(decoded.entry(for: "k")?.answeredAt == time, "\(String(decoding: json, as: UTF8.self))")
    }

    @Test func theNewCodableFormReadsBack() throws {
        var store = InMemoryProfileStore()
        _ = try store.process(seedResponse(), with: builder)
        _ = try store.process(
            response("r2", at: 0, user: User(anonymousID: "anon-1", email: "a@example.com"), [("p", 1.5, .user)]),
            with: builder)
        let json = try JSONEncoder().encode(store)
        #expect(try JSONDecoder().decode(InMemoryProfileStore.self, from: json) == store)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""at":"2026-11-20T10:15:00.000000Z""#), "\(text)")
        #expect(text.contains(#""response":"resp_123""#), "\(text)")
    }

    @Test func theOldCodableFormsDecodeAsAnsweredAtTheDistantPast() throws {
        let oldProfile = #"""
            {"userTraits": {"refiner_role": "CEO"}, "email": "john@example.com",
             "accountTraits": {"refiner_industry": "retail"}}
            """#
        let profile = try JSONDecoder().decode(CollectedProfile.self, from: Data(oldProfile.utf8))
        #expect(profile.user.traits.entry(for: "refiner_role")?.answeredAt == .distantPast)
        #expect(profile.user.email == "john@example.com")
        #expect(profile.account.traits["refiner_industry"] == "retail")

        let oldStore = #"""
            {"users": {"u1": {"traits": {"refiner_role": "CEO"}, "email": "john@example.com"},
                       "anonymous:x": {"traits": {"refiner_team": "10+"}}},
             "accounts": {"a1": {"refiner_industry": "retail"}}}
            """#
        var store = try JSONDecoder().decode(InMemoryProfileStore.self, from: Data(oldStore.utf8))
        #expect(store.users["u1"]?.traits["refiner_role"] == "CEO")
        #expect(store.users["anonymous:x"] == nil)
        #expect(store.anonymousUsers["x"]?.traits["refiner_team"] == "10+")
        #expect(store.accounts["a1"]?.traits["refiner_industry"] == "retail")
        // Any answer with a time wins over what was stored without one.
        _ = try store.process(
            response("r1", at: -1_000_000, [("role", "CTO", .user), ("industry", "banking", .account)]), with: builder)
        #expect(store.users["u1"]?.traits["refiner_role"] == "CTO")
        #expect(store.accounts["a1"]?.traits["refiner_industry"] == "banking")
        #expect(store.users["u1"]?.email == "john@example.com")
    }

    @Test func aBoundedMemoryStoreForgetsTheLeastRecentlyApplied() async throws {
        let store = MemoryProfileStore(configuration: .init(maximumUsers: 2, maximumAccounts: 1))
        for (index, user) in ["u1", "u2", "u1", "u3"].enumerated() {
            _ = try await store.apply(
                builder.changes(
                    for: response(
                        "r\(index)", at: Double(index), user: User(id: user), account: "a\(index % 2)",
                        [("p", "v", .user)])))
        }
        #expect(await store.profile(.user("u2")).user == nil, "u2 was used least recently")
        #expect(await store.profile(.user("u1")).user != nil)
        #expect(await store.profile(.user("u3")).user != nil)
        #expect(await store.counts == (2, 1))
        #expect(await store.evictedCount == 4)  // u2, and an account at each of the last three applies
    }

    @Test func aBoundedMemoryStoreCanRefuseNewRecords() async throws {
        let store = MemoryProfileStore(configuration: .init(maximumUsers: 1, eviction: .refuseNewRecords))
        _ = try await store.apply(
            builder.changes(for: response("r1", at: 0, user: User(id: "u1"), [("p", "v", .user)])))
        await #expect(throws: ProfileStoreError.self) {
            _ = try await store.apply(
                builder.changes(for: response("r2", at: 0, user: User(id: "u2"), [("p", "v", .user)])))
        }
        // The known user still gets in.
        _ = try await store.apply(
            builder.changes(for: response("r3", at: 1, user: User(id: "u1"), [("p", "w", .user)])))
        #expect(await store.profile(.user("u1")).user?.traits["refiner_p"] == "w")
        #expect(await store.counts.users == 1)
    }
}
