/// The shared secret that Refiner sends with each webhook, in a header.
///
/// Its description, debug description and reflection name the header only, so printing the settings or
/// dumping them cannot show the secret.
public struct WebhookSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The header that carries it, such as `X-Refiner-Secret`.
    public var headerName: String
    /// The secret itself.
    public var value: String

    /// Creates a secret carried in a header.
    public init(headerName: String, value: String) {
        self.headerName = headerName
        self.value = value
    }

    /// Whether `presented` is the secret, in a time that depends only on the secret's length, so that
    /// timing reveals nothing of it: every byte of the secret is compared, whatever was presented.
    public func matches(_ presented: String) -> Bool {
        let expected = Array(value.utf8)
        let presented = Array(presented.utf8)
        var difference: UInt8 = presented.count == expected.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < presented.count ? presented[index] : 0)
        }
        return difference == 0
    }

    /// `WebhookSecret(header: X-Refiner-Secret, value: redacted)`.
    public var description: String { "WebhookSecret(header: \(headerName), value: redacted)" }
    /// The same as ``description``.
    public var debugDescription: String { description }
    /// The header only.
    public var customMirror: Mirror { Mirror(self, children: ["headerName": headerName]) }
}
