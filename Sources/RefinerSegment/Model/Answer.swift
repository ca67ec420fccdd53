#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One question of a response and what the user answered, or `nil` when the question was skipped.
///
/// The JSON form is `{"question": {...}, "value": ...}`; a skipped question has `"value": null` (or no
/// `value`) and produces no trait.
public struct Answer: Sendable, Hashable, Codable {
    /// The question answered.
    public var question: Question
    /// The answer; `nil` when the question was skipped.
    public var value: AnswerValue?

    /// Creates an answer.
    public init(question: Question, value: AnswerValue?) {
        self.question = question
        self.value = value
    }

    enum CodingKeys: String, CodingKey {
        case question
        case value
    }

    /// Decodes the JSON form; a string answer to a ``Question/Kind/date`` question that reads as an
    /// ISO-8601 date becomes ``AnswerValue/date(_:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.question = try container.decode(Question.self, forKey: .question)
        var value = try container.decodeIfPresent(AnswerValue.self, forKey: .value)
        if question.kind == .date, case .string(let text)? = value, let date = Timestamp.date(from: text) {
            value = .date(date)
        }
        self.value = value
    }

    /// Encodes the JSON form; a skipped question is written with `"value": null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(question, forKey: .question)
        try container.encode(value, forKey: .value)
    }
}
