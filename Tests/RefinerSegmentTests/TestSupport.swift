import Foundation
import RefinerSegment

/// Parses a message's JSON with Foundation, independently of the writer that made it.
func jsonObject(_ bytes: [UInt8]) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    guard let object = value as? [String: Any] else { throw TestFailure("not a JSON object: \(value)") }
    return object
}

func jsonObject(_ message: SegmentMessage) throws -> [String: Any] {
    try jsonObject(message.json)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `2026-11-20T10:15:00.000Z`, the seed example's completion time.
let seedDate = Date(timeIntervalSince1970: 1_795_169_700)

/// The seed example of the specification, built in code.
func seedResponse() -> SurveyResponse {
    SurveyResponse(
        id: "resp_123",
        completedAt: seedDate,
        survey: Survey(id: "onboarding", name: "Onboarding"),
        user: User(id: "your-user-id", email: "john.doe@example.com"),
        account: Account(id: "your-account-id"),
        answers: [
            Answer(question: Question(id: "q1", text: "What is your job role?"), value: "CEO"),
            Answer(question: Question(id: "q2", text: "How big is your team?"), value: "10+"),
            Answer(
                question: Question(
                    id: "q3", text: "How many employees work at your company?", propertyName: "employee_count",
                    attribution: .account),
                value: "1000+"),
            Answer(
                question: Question(
                    id: "q4", text: "Which industry are you in?", propertyName: "industry", attribution: .account),
                value: "acounting"),
        ]
    )
}
