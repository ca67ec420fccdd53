import Foundation
import RefinerSegment
import Testing

/// Payloads and helpers for the Refiner webhook tests.
enum WebhookFixtures {
    /// The real "Completed Survey" payload in the test bundle's resources.
    static func completedSurvey() throws -> [UInt8] {
        let url = try #require(
            Bundle.module.url(
                forResource: "refiner-webhook-completed-survey", withExtension: "json", subdirectory: "Fixtures")
        )
        return [UInt8](try Data(contentsOf: url))
    }

    /// A compact webhook payload with the parts a test varies; JSON fragments are spliced in as given.
    static func payload(
        triggeredEvent: String = "\"Completed Survey\"",
        contactUUID: String = "\"contact-1\"",
        remoteID: String = "\"user-1\"",
        email: String = "\"ada@example.com\"",
        account: String = "null",
        form: String = #"{"uuid": "form-1", "name": "Churn"}"#,
        responseUUID: String = "\"response-1\"",
        completedAt: String = "\"2022-10-18T05:05:45.000000Z\"",
        data: String = #"{"why_did_you_cancel": "Too expensive"}"#
    ) -> [UInt8] {
        Array(
            """
            {"uuid": \(contactUUID), "remote_id": \(remoteID), "email": \(email), "display_name": "",
             "attributes": {"plan": "pro"}, "account": \(account), "triggered_event": \(triggeredEvent),
             "form": \(form),
             "response": {"uuid": \(responseUUID), "completed_at": \(completedAt), "dismissed_at": null,
                          "data": \(data), "tags": []}}
            """.utf8
        )
    }

    /// An account object with a `remote_id` and the given attributes (a JSON object).
    static func account(remoteID: String = "\"account-1\"", attributes: String) -> String {
        #"{"uuid": "account-uuid-1", "remote_id": \#(remoteID), "domain": null, "attributes": \#(attributes)}"#
    }
}

/// A message's JSON as a dictionary, for checking fields one by one.
func webhookMessageObject(_ message: SegmentMessage) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(message.json)) as? [String: Any])
}
