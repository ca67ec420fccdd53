import Foundation
import RefinerSegment
import Testing

/// `process` and `apply(_:to:)` merge a response straight into the profile; `changes(for:)` then
/// `CollectedProfile.apply` is the general path. Both must give the same profiles and the same bytes.
struct DirectApplyTests {
    private static let base = Date(timeIntervalSince1970: 1_795_600_000)

    private static func response(
        _ id: String,
        at seconds: Double,
        user: User = User(id: "u1"),
        account: Account? = Account(id: "a1"),
        _ answers: [(text: String, value: AnswerValue?, attribution: Attribution)]
    ) -> SurveyResponse {
        SurveyResponse(
            id: id, completedAt: base.addingTimeInterval(seconds), survey: Survey(id: "s-\(answers.count)"),
            user: user, account: account,
            answers: answers.enumerated().map { index, answer in
                Answer(
                    question: Question(id: "q\(index)", text: answer.text, attribution: answer.attribution),
                    value: answer.value)
            })
    }

    /// Responses of every shape the direct path takes or declines.
    static let cases: [(name: String, responses: [SurveyResponse])] = [
        (
            "a newcomer with user and account answers",
            [response("r1", at: 0, [("Role?", "CEO", .user), ("Industry?", "Retail", .account), ("Team?", 5, .user)])]
        ),
        (
            "account answers without an account go to the user",
            [response("r1", at: 0, account: nil, [("Role?", "CEO", .user), ("Industry?", "Retail", .account)])]
        ),
        (
            "skipped answers and an email",
            [
                response(
                    "r1", at: 0, user: User(id: "u1", email: "a@example.com"),
                    [("Role?", nil, .user), ("Plan?", "Pro", .user)])
            ]
        ),
        (
            "an older response after a newer one, overlapping and new keys",
            [
                response("r2", at: 60, [("Role?", "CTO", .user), ("Industry?", "Banking", .account)]),
                response(
                    "r1", at: 0, user: User(id: "u1", email: "old@example.com"),
                    [("Role?", "CEO", .user), ("Industry?", "Retail", .account), ("Aardvark?", "yes", .user)]),
            ]
        ),
        (
            "equal times settled by value",
            [response("r1", at: 0, [("Role?", "CEO", .user)]), response("r1", at: 0, [("Role?", "CTO", .user)])]
        ),
        (
            "host-known account traits take the changes path",
            [
                response(
                    "r1", at: 0, account: Account(id: "a1", traits: ["industry?": "Host", "size": 10]),
                    [("Industry?", "Retail", .account), ("Role?", "CEO", .user)])
            ]
        ),
        (
            "a non-ASCII question and a key needing a collision suffix",
            [response("r1", at: 0, [("Größe?", "groß \"quoted\"", .user), ("Grosse?", "x", .user)])]
        ),
    ]

    @Test(arguments: cases.indices)
    func directApplyMatchesChangesThenApply(_ index: Int) throws {
        let builder = try SegmentCallBuilder()
        var direct = CollectedProfile()
        var general = CollectedProfile()
        for response in Self.cases[index].responses {
            let processed = try builder.process(response, profile: direct)
            #expect(processed.profile == (try builder.apply(response, to: direct)), "\(Self.cases[index].name)")
            direct = processed.profile
            general.apply(try builder.changes(for: response))
            #expect(direct == general, "\(Self.cases[index].name)")
            let messages = try builder.makeMessages(for: response, profile: general)
            #expect(processed.messages == messages, "\(Self.cases[index].name)")
        }
    }

    /// A newcomer's traits are a view of the response's answers (nothing copied per trait); every reader and
    /// every change must see the same entries as traits merged one by one.
    @Test func aNewcomersTraitsReadChangeAndEncodeAsMergedOnes() throws {
        let builder = try SegmentCallBuilder()
        let response = Self.response(
            "r1", at: 0, [("Role?", "CEO", .user), ("Industry?", "Retail", .account), ("Team?", 5, .user)])
        // Twice: the first resolves the survey's keys, the second takes them from the cache.
        for _ in 0..<2 {
            let built = try builder.process(response, profile: CollectedProfile()).profile
            let time = AnswerTime(completedAt: response.completedAt, responseID: "r1")
            var byHand = CollectedTraits()
            byHand.merge("refiner_role", value: "CEO", answeredAt: time)
            byHand.merge("refiner_team", value: 5, answeredAt: time)
            let traits = built.user.traits
            #expect(traits == byHand)
            #expect(traits.hashValue == byHand.hashValue)
            #expect(Array(traits) == Array(byHand))
            #expect(traits.count == 2)
            #expect(traits["refiner_team"] == 5)
            #expect(traits["refiner_industry"] == nil)
            #expect(traits.entry(for: "refiner_role") == byHand.entry(for: "refiner_role"))
            #expect(traits.values == byHand.values)
            #expect(built.account.traits.values == ["refiner_industry": "Retail"])
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            #expect(try encoder.encode(traits) == encoder.encode(byHand))
            #expect(try JSONDecoder().decode(CollectedTraits.self, from: encoder.encode(traits)) == byHand)
            // Changes start from the same entries.
            var changed = traits
            var changedByHand = byHand
            let later = AnswerTime(completedAt: response.completedAt.addingTimeInterval(1), responseID: "r2")
            let added = changed.merge("refiner_aardvark", value: "yes", answeredAt: later)
            #expect(added)
            changedByHand.merge("refiner_aardvark", value: "yes", answeredAt: later)
            let older = changed.merge("refiner_role", value: "CTO", answeredAt: .distantPast)
            #expect(!older)
            let newer = changed.merge("refiner_team", value: 6, answeredAt: later)
            #expect(newer)
            changedByHand.merge("refiner_team", value: 6, answeredAt: later)
            #expect(changed == changedByHand)
            #expect(Array(changed) == Array(changedByHand))
            // The view itself is unchanged by its copy's changes.
            #expect(traits == byHand)
            var merged = CollectedTraits()
            merged.merge(traits)
            #expect(merged == byHand)
        }
    }

    /// The key cache matches a survey's questions by their attribution too: a side's order is cached with them.
    @Test func aQuestionMovedToTheAccountIsNotTakenFromTheCache() throws {
        let builder = try SegmentCallBuilder()
        for attributions in [[Attribution.user, .account], [.user, .user], [.account, .user], [.user, .account]] {
            let response = Self.response(
                "r1", at: 0, [("Role?", "CEO", attributions[0]), ("Industry?", "Retail", attributions[1])])
            let direct = try builder.process(response, profile: CollectedProfile())
            var general = CollectedProfile()
            general.apply(try builder.changes(for: response))
            #expect(direct.profile == general, "\(attributions)")
            #expect(direct.messages == (try builder.makeMessages(for: response, profile: general)), "\(attributions)")
        }
    }

    @Test func theBuildersPlainMarkTakesNoPartInEquality() throws {
        let builder = try SegmentCallBuilder()
        let response = Self.response("r1", at: 0, [("Role?", "CEO", .user), ("Plan?", "Pro", .user)])
        let built = try builder.apply(response, to: CollectedProfile())
        let time = AnswerTime(completedAt: response.completedAt, responseID: "r1")
        var byHand = CollectedTraits()
        byHand.merge("refiner_role", value: "CEO", answeredAt: time)
        byHand.merge("refiner_plan", value: "Pro", answeredAt: time)
        #expect(built.user.traits == byHand)
        #expect(built.user.traits.hashValue == byHand.hashValue)
        #expect(try builder.changes(for: response).userTraits == ["refiner_role": "CEO", "refiner_plan": "Pro"])
    }

    @Test func aCachedSurveyStillRejectsABadValue() throws {
        let builder = try SegmentCallBuilder()
        _ = try builder.process(Self.response("r1", at: 0, [("Score?", 1.5, .user)]), profile: CollectedProfile())
        let bad = Self.response("r2", at: 1, [("Score?", .decimal(.nan), .user)])
        #expect(throws: RefinerSegmentError.self) { try builder.process(bad, profile: CollectedProfile()) }
        #expect(throws: RefinerSegmentError.self) { try builder.changes(for: bad) }
    }

    @Test func aChangedSurveyStillRejectsARepeatedQuestion() throws {
        let builder = try SegmentCallBuilder()
        let good = Self.response("r1", at: 0, [("Role?", "CEO", .user), ("Team?", "5", .user)])
        _ = try builder.process(good, profile: CollectedProfile())
        var repeated = good
        repeated.id = "r2"
        repeated.answers[1].question.id = "q0"
        let error = #expect(throws: RefinerSegmentError.self) {
            try builder.process(repeated, profile: CollectedProfile())
        }
        #expect(error?.code == .duplicateQuestion)
    }
}
