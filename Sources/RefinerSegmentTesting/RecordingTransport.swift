import RefinerSegment

/// A transport that keeps every request and answers each with the same response (200 by default).
///
/// For tests that check what the pipeline sends: headers, bodies, batch sizes, order.
public actor RecordingTransport: SegmentTransport {
    /// Every request received, in order.
    public private(set) var requests: [SegmentRequest] = []
    /// The answer to every request.
    public var response: SegmentResponse

    /// Creates a transport that answers `response` (200 with an empty JSON body by default).
    public init(response: SegmentResponse = SegmentResponse(statusCode: 200, body: Array("{}".utf8))) {
        self.response = response
    }

    /// Records the request and returns ``response``.
    public func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        requests.append(request)
        return response
    }

    /// Replaces the answer to later requests.
    public func answer(with response: SegmentResponse) {
        self.response = response
    }
}
