import Foundation
import RefinerSegment

extension RefinerSegmentTool {
    /// The seed example of the specification, as a response in the JSON form.
    static let demoResponse = """
        {"id": "resp_123", "completedAt": "2026-11-20T10:15:00.000Z",
         "survey": {"id": "onboarding", "name": "Onboarding"},
         "user": {"id": "your-user-id", "anonymousId": null, "email": "john.doe@example.com"},
         "account": {"id": "your-account-id"},
         "answers": [
           {"question": {"id": "q1", "text": "What is your job role?", "attribution": "user"}, "value": "CEO"},
           {"question": {"id": "q2", "text": "How big is your team?", "attribution": "user"}, "value": "10+"},
           {"question": {"id": "q3", "text": "How many employees work at your company?", "property": "employee_count",
                         "attribution": "account"}, "value": "1000+"},
           {"question": {"id": "q4", "text": "Which industry are you in?", "property": "industry",
                         "attribution": "account"}, "value": "acounting"}]}
        """

    /// `demo`: prints the seed example's calls as they would be sent.
    func demo(_ arguments: [String]) throws -> Int32 {
        let options = try Options(arguments)
        guard options.positional.isEmpty else { throw UsageError("demo takes no arguments") }
        let response = try SurveyResponse(json: Array(Self.demoResponse.utf8))
        var store = InMemoryProfileStore()
        let messages = try store.process(response, with: SegmentCallBuilder())
        var output = OutputBuffer(write: io.writeOutput)
        for message in messages { output.appendLine(message.json) }
        output.flush()
        return Self.success
    }
}
