/// The shared secret that Refiner sends with each webhook, in a header.
///
/// Its description is redacted, so logging a settings value by mistake prints no secret.
public struct WebhookSecret: Sendable, CustomStringConvertible {
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

    /// `WebhookSecret(X-Refiner-Secret: redacted)`.
    public var description: String { "WebhookSecret(\(headerName): redacted)" }
}
