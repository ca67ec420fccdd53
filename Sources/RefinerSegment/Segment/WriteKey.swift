#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Segment source's write key: the secret that lets a request write into a workspace.
///
/// It never shows itself: its description, debug description and reflection (`dump`, `Mirror`) are
/// redacted, so it cannot leak into a log line, an error or a report by way of string interpolation.
/// It is deliberately not `Codable`.
public struct WriteKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The key itself. Read it only to put it on the wire.
    public let rawValue: String

    /// Wraps a write key.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// `WriteKey(redacted)`.
    public var description: String { "WriteKey(redacted)" }
    /// `WriteKey(redacted)`.
    public var debugDescription: String { description }
    /// A mirror with no children, so `dump` shows nothing of the key.
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    /// The `Authorization` header value: HTTP Basic with the key as user name and an empty password,
    /// `Basic base64("<writeKey>:")`.
    public var basicAuthorization: String {
        "Basic " + Data((rawValue + ":").utf8).base64EncodedString()
    }
}
