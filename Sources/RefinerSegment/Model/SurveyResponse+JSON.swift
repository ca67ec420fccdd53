#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SurveyResponse {
    /// Reads a response from its JSON form (one line of the CLI's JSON Lines input).
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/invalidInput`` that names the
    ///   field that is missing or wrong (`answers[2].question.text`), or says the bytes are not JSON.
    public init(json: some Collection<UInt8>) throws(RefinerSegmentError) {
        do {
            self = try JSONDecoder().decode(SurveyResponse.self, from: Data(json))
        } catch let error as DecodingError {
            throw RefinerSegmentError(code: .invalidInput, detail: DecodingErrorDescription.describe(error))
        } catch {
            throw RefinerSegmentError(code: .invalidInput, detail: "\(error)")
        }
    }
}

/// Words for a `DecodingError` that name the field, for errors a person reads.
enum DecodingErrorDescription {
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\(path(context.codingPath + [key]))'"
        case .valueNotFound(_, let context):
            return "'\(path(context.codingPath))' is null but must have a value"
        case .typeMismatch(let type, let context):
            return "'\(path(context.codingPath))' has the wrong type (expected \(typeName(type)))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                var detail = "not valid JSON"
                if let underlying = context.underlyingError { detail += " (\(underlying))" }
                return detail
            }
            return "'\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text.isEmpty ? "(top level)" : text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Double.Type: return "a number"
        case is [Any].Type: return "an array"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") || name.contains("Keyed") { return "an object" }
            return name
        }
    }
}
