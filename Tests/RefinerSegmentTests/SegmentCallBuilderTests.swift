import Foundation
import Testing

@testable import RefinerSegment

struct SegmentCallBuilderTests {
    let builder = try! SegmentCallBuilder()

    private func messages(_ response: SurveyResponse, profile: CollectedProfile = CollectedProfile()) throws
        -> [SegmentMessage]
    {
        try builder.process(response, profile: profile).messages
    }

    private func traits(_ message: SegmentMessage) throws -> [String: Any] {
        let object = try jsonObject(message)
        return try #require((object["traits"] ?? object["properties"]) as? [String: Any])
    }

    // The seed example.

    @Test
    func seedExampleIsReproducedExactly() throws {
        let messages = try messages(seedResponse())
        try #require(messages.count == 2)
        let identify = try jsonObject(messages[0])
        #expect(identify["type"] as? String == "identify")
        #expect(identify["userId"] as? String == "your-user-id")
        #expect(identify["anonymousId"] == nil)
        #expect(
            try traits(messages[0]) as? [String: String] == [
                "refiner_email": "john.doe@example.com", "refiner_how_big_is_your_team": "10+",
                "refiner_what_is_your_job_role": "CEO",
            ])
        let group = try jsonObject(messages[1])
        #expect(group["type"] as? String == "group")
        #expect(group["groupId"] as? String == "your-account-id")
        #expect(group["userId"] as? String == "your-user-id")
        #expect(
            try traits(messages[1]) as? [String: String] == [
                "refiner_employee_count": "1000+", "refiner_industry": "acounting",
            ])
    }

    @Test
    func envelopeFieldsArePresentAndDeterministic() throws {
        let messages = try messages(seedResponse())
        for message in messages {
            let object = try jsonObject(message)
            #expect(object["messageId"] as? String == "refiner-resp_123-\(message.kind)")
            #expect(message.messageID == object["messageId"] as? String)
            #expect(message.responseID == "resp_123")
            #expect(object["timestamp"] as? String == "2026-11-20T10:15:00.000Z")
            let context = try #require(object["context"] as? [String: Any])
            let library = try #require(context["library"] as? [String: String])
            #expect(library == ["name": "refiner-segment-swift", "version": LibraryInfo.refinerSegment.version])
        }
        #expect(messages.map(\.kind) == [.identify, .group])
        #expect(try self.messages(seedResponse()) == messages, "the same response gives the same bytes")
    }

    /// Checked by hand against DESIGN.md's seed example once; keys in a stable order, no spaces.
    @Test
    func seedExampleGoldenBytes() throws {
        let messages = try messages(seedResponse())
        #expect(
            messages.map(\.description) == [
                #"{"type":"identify","messageId":"refiner-resp_123-identify","userId":"your-user-id","timestamp":"2026-11-20T10:15:00.000Z","traits":{"refiner_email":"john.doe@example.com","refiner_how_big_is_your_team":"10+","refiner_what_is_your_job_role":"CEO"},"context":{"library":{"name":"refiner-segment-swift","version":"0.1.0"}}}"#,
                #"{"type":"group","messageId":"refiner-resp_123-group","userId":"your-user-id","groupId":"your-account-id","timestamp":"2026-11-20T10:15:00.000Z","traits":{"refiner_employee_count":"1000+","refiner_industry":"acounting"},"context":{"library":{"name":"refiner-segment-swift","version":"0.1.0"}}}"#,
            ])
    }

    // Profiles.

    @Test
    func groupCarriesAccountTraitsCollectedFromAllItsUsers() throws {
        var store = InMemoryProfileStore()
        let first = seedResponse()
        var second = SurveyResponse(
            id: "resp_124", completedAt: seedDate, survey: Survey(id: "plan"), user: User(id: "colleague"),
            account: Account(id: "your-account-id"),
            answers: [
                Answer(question: Question(id: "p1", text: "Which plan?", attribution: .account), value: "Pro"),
                Answer(question: Question(id: "p2", text: "Your team?"), value: "Ops"),
            ])
        _ = try store.process(first, with: builder)
        let messages = try store.process(second, with: builder)
        #expect(
            try traits(messages[1]) as? [String: String] == [
                "refiner_employee_count": "1000+", "refiner_industry": "acounting", "refiner_which_plan": "Pro",
            ])
        #expect(try traits(messages[0]) as? [String: String] == ["refiner_your_team": "Ops"], "no other user's traits")
        second.id = "resp_125"
        second.answers[0].value = "Enterprise"
        let again = try store.process(second, with: builder)
        #expect(try traits(again[1])["refiner_which_plan"] as? String == "Enterprise", "latest answer wins")
    }

    @Test
    func userWithoutAccountGetsNoGroupCallAndKeepsAccountAnswers() throws {
        var response = seedResponse()
        response.account = nil
        let messages = try messages(response)
        #expect(messages.map(\.kind) == [.identify])
        let traits = try traits(messages[0])
        #expect(traits["refiner_industry"] as? String == "acounting", "no answer is lost for want of an account")
    }

    @Test
    func accountWithoutAccountAnswersStillGetsAGroupCall() throws {
        var response = seedResponse()
        response.answers.removeLast(2)
        let messages = try messages(response)
        #expect(messages.map(\.kind) == [.identify, .group])
        #expect(try traits(messages[1]).isEmpty)
    }

    @Test
    func anonymousUserGetsAnonymousID() throws {
        var response = seedResponse()
        response.user = User(anonymousID: "anon-1")
        let messages = try messages(response)
        for message in messages {
            let object = try jsonObject(message)
            #expect(object["anonymousId"] as? String == "anon-1")
            #expect(object["userId"] == nil)
        }
        #expect(try traits(messages[0])["refiner_email"] == nil)
    }

    @Test
    func userWithBothIDsSendsBoth() throws {
        var response = seedResponse()
        response.user.anonymousID = "anon-1"
        let object = try jsonObject(try messages(response)[0])
        #expect(object["userId"] as? String == "your-user-id")
        #expect(object["anonymousId"] as? String == "anon-1")
    }

    @Test
    func skippedQuestionsProduceNoTraitAndEraseNothing() throws {
        var response = seedResponse()
        let (_, profile) = try builder.process(response, profile: CollectedProfile())
        response.id = "resp_2"
        response.answers[0].value = nil
        let messages = try builder.process(response, profile: profile).messages
        #expect(try traits(messages[0])["refiner_what_is_your_job_role"] as? String == "CEO")
        #expect(!messages[0].description.contains("null"))
        var fresh = seedResponse()
        fresh.answers[0].value = nil
        #expect(try traits(try self.messages(fresh)[0])["refiner_what_is_your_job_role"] == nil)
    }

    @Test
    func everyValueTypeGoesOnTheWire() throws {
        var response = seedResponse()
        response.answers = [
            Answer(question: Question(id: "a", text: "Text"), value: .string("hi")),
            Answer(question: Question(id: "b", text: "NPS"), value: .integer(9)),
            Answer(question: Question(id: "c", text: "Rating"), value: .decimal(4.5)),
            Answer(question: Question(id: "d", text: "Happy"), value: .boolean(true)),
            Answer(question: Question(id: "e", text: "Tools"), value: .strings(["Xcode", "Vim"])),
            Answer(question: Question(id: "f", text: "Start"), value: .date(seedDate)),
        ]
        let message = try messages(response)[0]
        let traits = try traits(message)
        #expect(traits["refiner_text"] as? String == "hi")
        #expect(traits["refiner_nps"] as? Int == 9)
        #expect(traits["refiner_rating"] as? Double == 4.5)
        #expect(traits["refiner_happy"] as? Bool == true)
        #expect(traits["refiner_tools"] as? [String] == ["Xcode", "Vim"])
        #expect(traits["refiner_start"] as? String == "2026-11-20T10:15:00.000Z")
        #expect(message.description.contains(#""refiner_nps":9,"#), "integers stay integers")
        #expect(message.description.contains(#""refiner_happy":true"#))
    }

    @Test
    func hostKnownAccountTraitsArePrefixedOnTheGroupCall() throws {
        var response = seedResponse()
        response.account?.traits = ["Plan": "Pro", "seats": 12, "refiner_industry": "overridden by the answer"]
        let traits = try traits(try messages(response)[1])
        #expect(traits["refiner_plan"] as? String == "Pro")
        #expect(traits["refiner_seats"] as? Int == 12)
        #expect(traits["refiner_industry"] as? String == "acounting")
    }

    @Test
    func completedSurveyTrackIsOptIn() throws {
        let builder = try SegmentCallBuilder(configuration: .init(sendsCompletedSurveyEvent: true))
        let messages = try builder.process(seedResponse(), profile: CollectedProfile()).messages
        #expect(messages.map(\.kind) == [.identify, .group, .track])
        let track = try jsonObject(messages[2])
        #expect(track["event"] as? String == "Completed Survey")
        #expect(track["messageId"] as? String == "refiner-resp_123-track")
        #expect(
            track["properties"] as? [String: String] == [
                "survey_id": "onboarding", "survey_name": "Onboarding", "response_id": "resp_123",
            ])
    }

    // Message ids.

    @Test
    func longResponseIDsGiveHashedMessageIDsWithinTheLimit() throws {
        var response = seedResponse()
        response.id = String(repeating: "r", count: 300)
        let ids = try messages(response).map(\.messageID)
        response.id = String(repeating: "r", count: 299) + "s"
        let otherIDs = try messages(response).map(\.messageID)
        for id in ids + otherIDs {
            #expect(id.count <= 100)
            #expect(id.hasPrefix("refiner-sha256-"))
        }
        #expect(Set(ids + otherIDs).count == 4)
        #expect(
            ids
                == (try messages(
                    {
                        var r = response
                        r.id = String(repeating: "r", count: 300)
                        return r
                    }()
                ).map(\.messageID)))
    }

    // Rejected input: a clear error before anything is built.

    static let invalidResponses: [(String, RefinerSegmentError.Code, @Sendable (inout SurveyResponse) -> Void)] = [
        ("empty response id", .missingResponseID, { $0.id = "" }),
        ("no user ids", .missingUserIdentity, { $0.user = User(email: "a@b.c") }),
        ("empty user ids", .missingUserIdentity, { $0.user = User(id: "", anonymousID: "") }),
        ("empty account id", .missingAccountID, { $0.account = Account(id: "") }),
        ("empty question id", .missingQuestionID, { $0.answers[0].question.id = "" }),
        ("repeated question", .duplicateQuestion, { $0.answers[1].question.id = "q1" }),
        ("NaN", .nonFiniteNumber, { $0.answers[0].value = .decimal(.nan) }),
        ("infinity", .nonFiniteNumber, { $0.answers[0].value = .decimal(.infinity) }),
        ("minus infinity", .nonFiniteNumber, { $0.answers[0].value = .decimal(-.infinity) }),
        ("NaN account trait", .nonFiniteNumber, { $0.account?.traits["score"] = .decimal(.nan) }),
        ("date past 9999", .dateOutOfRange, { $0.answers[0].value = .date(Date(timeIntervalSince1970: 1e12)) }),
        ("completion before year 0", .dateOutOfRange, { $0.completedAt = Date(timeIntervalSince1970: -1e11) }),
        ("colliding custom names", .collidingPropertyNames, { $0.answers[3].question.propertyName = "Employee count" }),
    ]

    @Test(arguments: invalidResponses)
    func invalidResponsesAreRejectedWithACode(
        name: String, code: RefinerSegmentError.Code, change: @Sendable (inout SurveyResponse) -> Void
    ) {
        var response = seedResponse()
        change(&response)
        var store = InMemoryProfileStore()
        let error = #expect(throws: RefinerSegmentError.self, "\(name)") { try store.process(response, with: builder) }
        #expect(error?.code == code, "\(name)")
        if code != .missingResponseID {
            #expect(error?.responseID == "resp_123")
            #expect(error?.description.contains("resp_123") == true)
        }
        #expect(store == InMemoryProfileStore(), "nothing is stored for a rejected response")
    }

    @Test
    func nonFiniteErrorNamesTheQuestion() {
        var response = seedResponse()
        response.answers[1].value = .decimal(.nan)
        let error = #expect(throws: RefinerSegmentError.self) {
            try builder.process(response, profile: CollectedProfile())
        }
        #expect(error?.description.contains("q2") == true)
    }

    // The per-message size limit.

    /// A response whose identify message is exactly `size` bytes.
    private func response(identifyBytes size: Int) throws -> SurveyResponse {
        var response = seedResponse()
        response.answers = [Answer(question: Question(id: "q", text: "Long"), value: .string(""))]
        let unlimited = try SegmentCallBuilder(configuration: .init(maximumMessageBytes: .max))
        let base = try unlimited.process(response, profile: CollectedProfile()).messages[0].byteCount
        response.answers[0].value = .string(String(repeating: "x", count: size - base))
        let message = try unlimited.process(response, profile: CollectedProfile()).messages[0]
        try #require(message.byteCount == size)
        return response
    }

    @Test(arguments: [32 * 1024 - 1, 32 * 1024])
    func messagesUpToTheLimitAreBuilt(size: Int) throws {
        let message = try messages(try response(identifyBytes: size))[0]
        #expect(message.byteCount == size)
        #expect(try jsonObject(message)["type"] as? String == "identify")
    }

    @Test
    func messageOverTheLimitIsAnErrorNamingTheResponseAndLargestTraits() throws {
        let response = try response(identifyBytes: 32 * 1024 + 1)
        let error = #expect(throws: RefinerSegmentError.self) { try messages(response) }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.responseID == "resp_123")
        #expect(error?.description.contains("refiner_long") == true)
        #expect(error?.description.contains("32769") == true)
    }

    @Test
    func sizeCountsUTF8BytesNotCharacters() throws {
        var response = seedResponse()
        // 11,000 characters of 3 bytes each: 33,000 bytes, though far fewer than 32,768 characters.
        response.answers[0].value = .string(String(repeating: "€", count: 11_000))
        let error = #expect(throws: RefinerSegmentError.self) { try messages(response) }
        #expect(error?.code == .messageTooLarge)
    }
}

struct SegmentBatchTests {
    @Test
    func batchEnvelopeCarriesMessagesSentAtAndWriteKey() throws {
        let messages = try SegmentCallBuilder().process(seedResponse(), profile: CollectedProfile()).messages
        let sentAt = Date(timeIntervalSince1970: 1_795_169_701.25)
        let body = SegmentBatch.encode(messages, sentAt: sentAt, writeKey: WriteKey("wk_123"))
        let object = try jsonObject(body)
        let batch = try #require(object["batch"] as? [[String: Any]])
        #expect(batch.map { $0["type"] as? String } == ["identify", "group"])
        #expect(object["sentAt"] as? String == "2026-11-20T10:15:01.250Z")
        #expect(object["writeKey"] as? String == "wk_123")
        #expect(SegmentBatch.byteCount(of: messages, writeKey: WriteKey("wk_123")) == body.count)
        #expect(
            SegmentBatch.byteCount(of: [], writeKey: WriteKey("wk_123"))
                == SegmentBatch.encode([], sentAt: sentAt, writeKey: WriteKey("wk_123")).count)
    }

    @Test
    func writeKeyNeverShowsItself() {
        let key = WriteKey("super-secret-key")
        var dumped = ""
        dump(key, to: &dumped)
        for text in ["\(key)", String(describing: key), String(reflecting: key), dumped, "\([key])"] {
            #expect(!text.contains("super-secret-key"), "\(text)")
        }
        #expect(key.basicAuthorization == "Basic " + Data("super-secret-key:".utf8).base64EncodedString())
        #expect(key.basicAuthorization == "Basic c3VwZXItc2VjcmV0LWtleTo=")
    }
}
