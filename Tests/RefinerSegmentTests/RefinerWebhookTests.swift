import Foundation
import RefinerSegment
import Testing

@Suite("Refiner webhooks")
struct RefinerWebhookTests {
    let builder: SegmentCallBuilder

    init() throws {
        builder = try SegmentCallBuilder()
    }

    private func messages(_ payload: [UInt8]) throws -> [SegmentMessage] {
        var profiles = InMemoryProfileStore()
        return try profiles.process(SurveyResponse(refinerWebhook: payload), with: builder)
    }

    // MARK: The real payload

    @Test func fixtureBecomesOneIdentifyCallAndNoGroupCall() throws {
        let messages = try messages(WebhookFixtures.completedSurvey())
        #expect(messages.map(\.kind) == [.identify])
        let identify = try #require(messages.first)
        #expect(
            identify.description
                == #"{"type":"identify","messageId":"refiner-7c508c60-4ea2-11ed-9302-57708fe11d26-identify","#
                + #""userId":"sdk@30","timestamp":"2022-10-18T05:05:45.000Z","#
                + #""traits":{"refiner_email":"sdk30@gmail.com","#
                + #""refiner_why_did_you_cancel_your_subscription":"Missing features"},"#
                + #""context":{"library":{"name":"refiner-segment-swift","version":"\#(LibraryInfo.refinerSegment.version)"}}}"#
        )
        let object = try webhookMessageObject(identify)
        #expect(object["userId"] as? String == "sdk@30")
        #expect(object["anonymousId"] == nil)
        #expect(object["timestamp"] as? String == "2022-10-18T05:05:45.000Z")
        let traits = try #require(object["traits"] as? [String: String])
        #expect(
            traits == [
                "refiner_why_did_you_cancel_your_subscription": "Missing features",
                "refiner_email": "sdk30@gmail.com",
            ]
        )
    }

    @Test func fixtureMapsToTheResponseModel() throws {
        let response = try SurveyResponse(refinerWebhook: WebhookFixtures.completedSurvey())
        #expect(response.id == "7c508c60-4ea2-11ed-9302-57708fe11d26")
        #expect(response.survey == Survey(id: "0d94c790-401c-11ed-bb27-e31f6832c5ae", name: "Customer Churn Survey"))
        #expect(response.user == User(id: "sdk@30", email: "sdk30@gmail.com"))
        #expect(response.account == nil)
        #expect(response.completedAt == Date(timeIntervalSince1970: 1_666_069_545))
        #expect(
            response.answers == [
                Answer(
                    question: Question(
                        id: "why_did_you_cancel_your_subscription",
                        text: "why_did_you_cancel_your_subscription"
                    ),
                    value: "Missing features"
                )
            ]
        )
    }

    @Test func fixtureRoundTripsThroughCodable() throws {
        let webhook = try RefinerWebhook(json: WebhookFixtures.completedSurvey())
        let encoded = try JSONEncoder().encode(webhook)
        #expect(try RefinerWebhook(json: encoded) == webhook)
        #expect(webhook.account?.attributes["company"] == .null)
        #expect(webhook.account?.attributes.count == 17)
    }

    // MARK: Accounts

    @Test func accountWithRemoteIDGetsGroupCallWithAllNonNullAttributesPrefixed() throws {
        let attributes = #"""
            {"company": "Acme", "employees": 42, "revenue": 1.5, "isfunded": true, "regions": ["eu", "us"],
             "address": {"zip": "10115", "city": "Berlin"}, "mixed": [1, "a", null], "location": null,
             "1": null, "business_email": "ops@acme.example"}
            """#
        let messages = try messages(
            WebhookFixtures.payload(account: WebhookFixtures.account(attributes: attributes))
        )
        #expect(messages.map(\.kind) == [.identify, .group])
        let group = try webhookMessageObject(try #require(messages.last))
        #expect(group["groupId"] as? String == "account-1")
        #expect(group["userId"] as? String == "user-1")
        let traits = try #require(group["traits"] as? NSDictionary)
        let expected: NSDictionary = [
            "refiner_company": "Acme",
            "refiner_employees": 42,
            "refiner_revenue": 1.5,
            "refiner_isfunded": true,
            "refiner_regions": ["eu", "us"],
            "refiner_address": #"{"city":"Berlin","zip":"10115"}"#,
            "refiner_mixed": #"[1,"a",null]"#,
            "refiner_business_email": "ops@acme.example",
        ]
        #expect(traits == expected)
        #expect(
            messages.last?.description.contains(#""refiner_employees":42,"#) == true,
            "integers stay integers on the wire"
        )
    }

    @Test func answerWhoseKeyIsAnAccountAttributeGoesToTheGroupCall() throws {
        let account = WebhookFixtures.account(attributes: #"{"company_size": null, "industry": "software"}"#)
        let data = #"{"company_size": "50-200", "why_did_you_cancel": "Too expensive"}"#
        let messages = try messages(WebhookFixtures.payload(account: account, data: data))
        let identify = try webhookMessageObject(try #require(messages.first))
        let group = try webhookMessageObject(try #require(messages.last))
        #expect(
            identify["traits"] as? [String: String]
                == ["refiner_email": "ada@example.com", "refiner_why_did_you_cancel": "Too expensive"]
        )
        #expect(
            group["traits"] as? [String: String] == ["refiner_company_size": "50-200", "refiner_industry": "software"])
    }

    @Test(arguments: ["null", #""""#])
    func accountWithoutRemoteIDMakesNoGroupCall(remoteID: String) throws {
        let account = WebhookFixtures.account(remoteID: remoteID, attributes: #"{"industry": "software"}"#)
        let data = #"{"industry": "retail"}"#
        let messages = try messages(WebhookFixtures.payload(account: account, data: data))
        #expect(messages.map(\.kind) == [.identify])
        let identify = try webhookMessageObject(try #require(messages.first))
        #expect(
            identify["traits"] as? [String: String]
                == ["refiner_email": "ada@example.com", "refiner_industry": "retail"],
            "an account answer is kept on the identify call when there is no group to carry it"
        )
    }

    @Test func emptyAttributesAndDataWrittenAsArraysAreAccepted() throws {
        let account = WebhookFixtures.account(attributes: "[]")
        let response = try SurveyResponse(refinerWebhook: WebhookFixtures.payload(account: account, data: "[]"))
        #expect(response.account == Account(id: "account-1"))
        #expect(response.answers.isEmpty)
    }

    // MARK: Users

    @Test func anonymousContactIsIdentifiedByItsUUID() throws {
        let messages = try messages(WebhookFixtures.payload(remoteID: "null"))
        let identify = try webhookMessageObject(try #require(messages.first))
        #expect(identify["anonymousId"] as? String == "contact-1")
        #expect(identify["userId"] == nil)
        #expect((identify["traits"] as? [String: Any])?["refiner_email"] as? String == "ada@example.com")
    }

    @Test func contactWithoutEmailHasNoEmailTrait() throws {
        let response = try SurveyResponse(refinerWebhook: WebhookFixtures.payload(email: "null"))
        #expect(response.user == User(id: "user-1"))
    }

    @Test func contactWithNeitherRemoteIDNorUUIDIsRejected() throws {
        let error = try #require(throws: RefinerSegmentError.self) {
            try SurveyResponse(refinerWebhook: WebhookFixtures.payload(contactUUID: "null", remoteID: "null"))
        }
        #expect(error.code == .missingUserIdentity)
        #expect(error.responseID == "response-1")
        #expect(error.description.contains("remote_id"))
    }

    // MARK: Answers and times

    @Test(arguments: [
        ("\"2022-10-18T05:05:45.000000Z\"", "2022-10-18T05:05:45.000Z"),
        ("\"2020-09-02 21:53:33\"", "2020-09-02T21:53:33.000Z"),
        ("\"2022-10-18T05:05:45.123456Z\"", "2022-10-18T05:05:45.123Z"),
    ])
    func completionTimeReadsBothRefinerFormats(completedAt: String, timestamp: String) throws {
        let identify = try webhookMessageObject(
            try #require(try messages(WebhookFixtures.payload(completedAt: completedAt)).first)
        )
        #expect(identify["timestamp"] as? String == timestamp)
    }

    @Test func answerValuesKeepTheirJSONTypes() throws {
        let data = #"""
            {"nps": 9, "score": 10.0, "rating": 4.5, "would_recommend": false, "features": ["export", "sso"], "skipped": null,
             "matrix": {"speed": 5, "price": 2}, "comment": "Great"}
            """#
        let response = try SurveyResponse(refinerWebhook: WebhookFixtures.payload(data: data))
        let values = Dictionary(uniqueKeysWithValues: response.answers.map { ($0.question.id, $0.value) })
        #expect(
            values == [
                "nps": .integer(9),
                "score": .integer(10),
                "rating": .decimal(4.5),
                "would_recommend": .boolean(false),
                "features": .strings(["export", "sso"]),
                "matrix": .string(#"{"price":2,"speed":5}"#),
                "comment": .string("Great"),
            ]
        )
    }

    @Test func answersAreInKeyOrderWhateverThePayloadOrder() throws {
        let forward = #"{"b_question": "1", "a_question": "2", "c_question": "3"}"#
        let backward = #"{"c_question": "3", "a_question": "2", "b_question": "1"}"#
        let first = try SurveyResponse(refinerWebhook: WebhookFixtures.payload(data: forward))
        let second = try SurveyResponse(refinerWebhook: WebhookFixtures.payload(data: backward))
        #expect(first.answers.map(\.question.id) == ["a_question", "b_question", "c_question"])
        #expect(first == second)
    }

    // MARK: Errors

    @Test(arguments: ["Viewed Survey", "Dismissed Survey", "completed survey", ""])
    func otherTriggeredEventIsUnhandled(event: String) throws {
        // Other events may lack what a completed response has; the event is checked first.
        let payload = WebhookFixtures.payload(triggeredEvent: "\"\(event)\"", completedAt: "null", data: "null")
        let error = try #require(throws: RefinerSegmentError.self) { try SurveyResponse(refinerWebhook: payload) }
        #expect(error.code == .unhandledEvent)
        #expect(error.responseID == "response-1")
        #expect(error.detail.contains("'\(event)'"))
    }

    @Test(arguments: [1, 2, 100, 2000, 3137])
    func truncatedPayloadIsInvalidInput(droppingLast count: Int) throws {
        let payload = try WebhookFixtures.completedSurvey()
        let error = try #require(throws: RefinerSegmentError.self) {
            try SurveyResponse(refinerWebhook: payload.dropLast(count))
        }
        #expect(error.code == .invalidInput)
        #expect(error.detail.contains("not valid JSON"))
    }

    @Test(arguments: [
        (WebhookFixtures.payload(triggeredEvent: "null"), "missing field 'triggered_event'"),
        (WebhookFixtures.payload(responseUUID: "null"), "missing field 'response.uuid'"),
        (WebhookFixtures.payload(responseUUID: #""""#), "missing field 'response.uuid'"),
        (WebhookFixtures.payload(completedAt: "null"), "missing field 'response.completed_at'"),
        (WebhookFixtures.payload(completedAt: #""yesterday""#), "'response.completed_at' is 'yesterday'"),
        (WebhookFixtures.payload(form: "null"), "missing field 'form.uuid'"),
        (WebhookFixtures.payload(form: #"{"name": "Churn"}"#), "missing field 'form.uuid'"),
        (WebhookFixtures.payload(responseUUID: "42"), "'response.uuid' has the wrong type"),
        (WebhookFixtures.payload(data: #"["a"]"#), "'response.data' has the wrong type"),
        (Array(#"{"triggered_event": "Completed Survey", "uuid": "c"}"#.utf8), "missing field 'response'"),
        (Array("[1, 2]".utf8), "wrong type (expected an object)"),
    ])
    func payloadLackingAFieldNamesIt(payload: [UInt8], detail: String) throws {
        let error = try #require(throws: RefinerSegmentError.self) { try SurveyResponse(refinerWebhook: payload) }
        #expect(error.code == .invalidInput)
        #expect(error.detail.contains(detail), "\(error)")
    }

    // MARK: Either shape

    @Test func recordOfEitherShapeIsReadByItsShape() throws {
        let jsonForm = #"""
            {"id": "resp_123", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "onboarding"},
             "user": {"id": "your-user-id"}, "answers": [{"question": {"id": "q1", "text": "Role?"}, "value": "CEO"}]}
            """#
        #expect(
            try SurveyResponse(jsonOrRefinerWebhook: Array(jsonForm.utf8)) == SurveyResponse(json: Array(jsonForm.utf8))
        )
        let fixture = try WebhookFixtures.completedSurvey()
        #expect(try SurveyResponse(jsonOrRefinerWebhook: fixture) == SurveyResponse(refinerWebhook: fixture))
    }

    @Test func webhookWithoutTriggeredEventIsStillRecognizedByResponseAndForm() throws {
        let payload = Array(#"{"uuid": "c", "form": {"uuid": "f"}, "response": {"uuid": "r"}}"#.utf8)
        let error = try #require(throws: RefinerSegmentError.self) { try SurveyResponse(jsonOrRefinerWebhook: payload) }
        #expect(error.detail == "missing field 'triggered_event'")
    }

    @Test func unhandledEventIsReportedWhicheverEntryPointReadsIt() throws {
        let payload = WebhookFixtures.payload(triggeredEvent: #""Viewed Survey""#)
        let error = try #require(throws: RefinerSegmentError.self) { try SurveyResponse(jsonOrRefinerWebhook: payload) }
        #expect(error.code == .unhandledEvent)
    }

    @Test func notJSONIsInvalidInputWhicheverShape() throws {
        let error = try #require(throws: RefinerSegmentError.self) {
            try SurveyResponse(jsonOrRefinerWebhook: Array("hello".utf8))
        }
        #expect(error.code == .invalidInput)
        #expect(error.detail.contains("not valid JSON"))
    }
}
