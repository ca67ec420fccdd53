import Foundation

/// The baseline DESIGN.md describes: the identify+group pair as a Swift engineer would write it by hand,
/// with Codable structs, Foundation's JSONEncoder and keys folded with Foundation's string APIs.
enum Baseline {
    static func key(_ text: String, prefix: String = "refiner_") -> String {
        let folded = text.decomposedStringWithCompatibilityMapping
            .folding(options: [.diacriticInsensitive, .caseInsensitive, .widthInsensitive], locale: nil)
            .replacingOccurrences(of: "'", with: "")
            .replacingOccurrences(of: "’", with: "")
        let words = folded.components(separatedBy: CharacterSet.alphanumerics.inverted).filter { !$0.isEmpty }
        return prefix + words.joined(separator: "_")
    }

    struct Library: Codable {
        var name: String
        var version: String
    }

    struct Context: Codable {
        var library: Library
    }

    struct Identify: Codable {
        var type = "identify"
        var messageId: String
        var userId: String
        var timestamp: String
        var traits: [String: String]
        var context: Context
    }

    struct Group: Codable {
        var type = "group"
        var messageId: String
        var userId: String
        var groupId: String
        var timestamp: String
        var traits: [String: String]
        var context: Context
    }

    /// One answer: the question text, whether it belongs to the account, and the value.
    struct Answer {
        var question: String
        var isAccount: Bool
        var value: String
    }

    // Made once and reused, as a careful engineer would (both are costly to create). The formatter is not
    // Sendable; the benchmark only uses it from one task at a time.
    nonisolated(unsafe) static let formatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Builds and encodes the pair; returns the encoded bytes' total size.
    static func pair(responseID: String, userID: String, accountID: String, completedAt: Date, answers: [Answer])
        -> Int
    {
        let timestamp = formatter.string(from: completedAt)
        var userTraits: [String: String] = [:]
        var accountTraits: [String: String] = [:]
        for answer in answers {
            if answer.isAccount {
                accountTraits[key(answer.question)] = answer.value
            } else {
                userTraits[key(answer.question)] = answer.value
            }
        }
        let context = Context(library: Library(name: "refiner-segment-swift", version: "0.1.0"))
        let identify = Identify(
            messageId: "refiner-\(responseID)-identify", userId: userID, timestamp: timestamp, traits: userTraits,
            context: context)
        let group = Group(
            messageId: "refiner-\(responseID)-group", userId: userID, groupId: accountID, timestamp: timestamp,
            traits: accountTraits, context: context)
        let first = (try? encoder.encode(identify))?.count ?? 0
        let second = (try? encoder.encode(group))?.count ?? 0
        return first + second
    }
}
