/// An HTTP response, whatever its status: what a ``SegmentTransport`` returns.
public struct SegmentResponse: Sendable, Hashable {
    /// The HTTP status code, such as 200 or 429.
    public var statusCode: Int
    /// The header fields, by name as received; look them up with ``headerField(_:)``.
    public var headerFields: [String: String]
    /// The body bytes.
    public var body: [UInt8]

    /// Creates a response.
    public init(statusCode: Int, headerFields: [String: String] = [:], body: [UInt8] = []) {
        self.statusCode = statusCode
        self.headerFields = headerFields
        self.body = body
    }

    /// The value of a header field, its name compared without regard to case (`retry-after`).
    public func headerField(_ name: String) -> String? {
        HeaderLookup.value(of: name, in: headerFields)
    }
}

/// Header lookup without regard to case, for requests and responses.
enum HeaderLookup {
    static func value(of name: String, in fields: [String: String]) -> String? {
        if let value = fields[name] { return value }
        let lowered = name.lowercased()
        for (key, value) in fields where key.lowercased() == lowered { return value }
        return nil
    }
}
