#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A completed survey response: who answered which survey, when, and what.
///
/// Its JSON form (one object per line for the CLI) is a public contract:
///
/// ```json
/// {"id": "resp_123", "completedAt": "2026-11-20T10:15:00.000Z",
///  "survey": {"id": "onboarding", "name": "Onboarding"},
///  "user": {"id": "your-user-id", "email": "john.doe@example.com"},
///  "account": {"id": "your-account-id"},
///  "answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]}
/// ```
///
/// `completedAt` is ISO-8601 (fractional seconds and an offset are optional; no offset means UTC).
public struct SurveyResponse: Sendable, Hashable, Codable {
    /// The response's id; the Segment `messageId`s derive from it, so replays dedupe. Must not be empty.
    public var id: String
    /// When the user completed the survey; the `timestamp` of every call built from the response.
    public var completedAt: Date
    /// The survey answered.
    public var survey: Survey
    /// Who answered.
    public var user: User
    /// The account the user belongs to; without one, no `group` call is made.
    public var account: Account?
    /// The answers, in question order (the order that tells colliding trait keys apart).
    public var answers: [Answer]

    /// Creates a response.
    public init(
        id: String,
        completedAt: Date,
        survey: Survey,
        user: User,
        account: Account? = nil,
        answers: [Answer] = []
    ) {
        self.id = id
        self.completedAt = completedAt
        self.survey = survey
        self.user = user
        self.account = account
        self.answers = answers
    }

    enum CodingKeys: String, CodingKey {
        case id
        case completedAt
        case survey
        case user
        case account
        case answers
    }

    /// Decodes the JSON form.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try container.decode(String.self, forKey: .id)
        let completedAt = try container.decode(String.self, forKey: .completedAt)
        guard let date = Timestamp.date(from: completedAt) else {
            throw DecodingError.dataCorruptedError(
                forKey: .completedAt,
                in: container,
                debugDescription: "'\(completedAt)' is not an ISO-8601 date-time such as 2026-11-20T10:15:00.000Z"
            )
        }
        self.completedAt = date
        self.survey = try container.decode(Survey.self, forKey: .survey)
        self.user = try container.decode(User.self, forKey: .user)
        self.account = try container.decodeIfPresent(Account.self, forKey: .account)
        self.answers = try container.decodeIfPresent([Answer].self, forKey: .answers) ?? []
    }

    /// Encodes the JSON form, `completedAt` with milliseconds in UTC.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(Timestamp.string(from: completedAt), forKey: .completedAt)
        try container.encode(survey, forKey: .survey)
        try container.encode(user, forKey: .user)
        try container.encodeIfPresent(account, forKey: .account)
        try container.encode(answers, forKey: .answers)
    }
}
