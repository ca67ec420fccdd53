import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@Suite struct RetryContractTests {
    @Test(arguments: [200, 201, 202, 204, 299])
    func twoHundredsAreDelivered(status: Int) async throws {
        let harness = try await Harness([.status(status)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["delivered"])
        #expect(await harness.transport.requests.count == 1)
        #expect(await harness.pipeline.counters.delivered == 2)
        #expect(harness.clock.sleeps.isEmpty)
    }

    @Test(arguments: [400, 401, 403, 404, 413, 422, 418, 451, 499, 501, 505])
    func refusedStatusesAreDroppedAndReportedWithTheServersAnswer(status: Int) async throws {
        let harness = try await Harness([.status(status, body: #"{"error":"nope"}"#)])
        let pair = [Messages.sized("m1", size: 100)]  // one message: a batch of several is split on 400 and 413
        try await harness.pipeline.record(pair)
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["failed"])
        let reason = try #require(outcomes.first?.reason)
        #expect(reason.code == .rejected)
        #expect(reason.statusCode == status)
        #expect(reason.responseBody == #"{"error":"nope"}"#)
        #expect(outcomes.first?.messages == pair.map(\.messageID))
        #expect(await harness.transport.requests.count == 1)
        #expect(await harness.pipeline.counters.failed == 1)
    }

    @Test(arguments: [408, 410, 429, 460, 500, 502, 503, 504, 599])
    func retryableStatusesAreRetriedWithGrowingDelays(status: Int) async throws {
        let harness = try await Harness([.status(status), .status(status), .status(status)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "retrying", "retrying", "delivered"])
        #expect(outcomes.first?.reason?.code == .retryableStatus)
        #expect(outcomes.first?.reason?.statusCode == status)
        #expect(harness.clock.sleeps == [.milliseconds(500), .seconds(1), .seconds(2)])
        let retryCounts = await harness.transport.requests.map { $0.headerField("X-Retry-Count") }
        #expect(retryCounts == ["0", "1", "2", "3"])
    }

    enum Fault: String, CaseIterable {
        case timeout, connectionFailure
        var step: ScriptedTransport.Step { self == .timeout ? .timeout : .connectionFailure }
    }

    @Test(arguments: Fault.allCases)
    func networkErrorsAndTimeoutsAreRetried(fault: Fault) async throws {
        let harness = try await Harness([fault.step, fault.step])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "retrying", "delivered"])
        #expect(outcomes.first?.reason?.code == .transportFailure)
        #expect(outcomes.first?.reason?.underlyingDescription?.isEmpty == false)
        #expect(outcomes.first?.reason?.underlying != nil)
        #expect(harness.clock.sleeps == [.milliseconds(500), .seconds(1)])
    }

    @Test func retryAfterInSecondsPausesForThatLong() async throws {
        let harness = try await Harness([.status(429, headerFields: ["Retry-After": "3"])])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "delivered"])
        #expect(harness.clock.sleeps == [.seconds(3)])
        if case .retrying(_, let retryCount, let delay, _)? = outcomes.first {
            #expect(retryCount == 1)
            #expect(delay == .seconds(3))
        }
    }

    @Test func retryAfterAsAnHTTPDatePausesUntilThen() async throws {
        // The virtual clock starts at Wed, 25 Nov 2026 10:00:00 GMT.
        let harness = try await Harness([.status(429, headerFields: ["retry-after": "Wed, 25 Nov 2026 10:00:10 GMT"])])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(harness.clock.sleeps == [.seconds(10)])
    }

    @Test func tooManyRequestsWithoutRetryAfterBacksOff() async throws {
        let harness = try await Harness([.status(429), .status(429)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(harness.clock.sleeps == [.milliseconds(500), .seconds(1)])
    }

    @Test func retryAfterIsCappedAtFiveMinutes() async throws {
        let harness = try await Harness([.status(503, headerFields: ["Retry-After": "86400"])])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(harness.clock.sleeps == [.seconds(300)])
    }

    @Test func retryAfterDoesNotSpendTheAttemptBudget() async throws {
        let limited = ScriptedTransport.Step.status(429, headerFields: ["Retry-After": "2"])
        let harness = try await Harness([limited, limited, limited, limited, .status(500)]) {
            $0.retry.maximumAttempts = 2
        }
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "retrying", "retrying", "retrying", "retrying", "delivered"])
        #expect(harness.clock.sleeps == [.seconds(2), .seconds(2), .seconds(2), .seconds(2), .milliseconds(500)])
    }

    @Test func retryAfterPausesTheWholePipeline() async throws {
        // Two batches in flight: the second may not go out while the first's pause lasts.
        let harness = try await Harness(
            [.status(429, headerFields: ["Retry-After": "5"])], mode: .automatic
        ) {
            $0.batch.maximumMessages = 2
        }
        try await harness.pipeline.record(try Messages.pair("r1"))
        try await harness.pipeline.record(try Messages.pair("r2"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        let requests = await harness.transport.requests
        #expect(requests.count == 3)
        let sentAt = try await harness.bodies().map { $0["sentAt"] as? String }
        #expect(sentAt == ["2026-11-25T10:00:00.000Z", "2026-11-25T10:00:05.000Z", "2026-11-25T10:00:05.000Z"])
    }

    @Test func attemptBoundFailsTheBatchWithTheLastAnswer() async throws {
        let harness = try await Harness(whenDone: .status(503, body: "down")) { $0.retry.maximumAttempts = 5 }
        let pair = try Messages.pair("r1")
        try await harness.pipeline.record(pair)
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "retrying", "retrying", "retrying", "failed"])
        let reason = try #require(outcomes.last?.reason)
        #expect(reason.code == .attemptsExhausted)
        #expect(reason.statusCode == 503)
        #expect(reason.responseBody == "down")
        #expect(outcomes.last?.messages == pair.map(\.messageID))
        #expect(await harness.transport.requests.count == 5)
    }

    @Test func defaultAttemptBoundIsOneHundred() async throws {
        let harness = try await Harness(whenDone: .status(500))
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(await harness.transport.requests.count == 100)
        #expect(outcomes.last?.reason?.code == .attemptsExhausted)
        #expect(harness.clock.sleeps.max() == .seconds(300))
        #expect(Array(harness.clock.sleeps.prefix(4)) == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])
    }

    @Test func twelveHourBoundFailsTheBatch() async throws {
        let harness = try await Harness(whenDone: .status(500)) { $0.retry.maximumAttempts = 10_000 }
        let start = harness.clock.date
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.last?.reason?.code == .retryTimeExhausted)
        let elapsed = harness.clock.date.timeIntervalSince(start)
        #expect(elapsed <= 12 * 3600)
        #expect(elapsed > 12 * 3600 - 300)
        #expect(await harness.transport.requests.count < 10_000)
    }

    @Test func twelveHourBoundHoldsForAServerThatRateLimitsForever() async throws {
        let harness = try await Harness(whenDone: .status(429, headerFields: ["Retry-After": "300"]))
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.last?.reason?.code == .retryTimeExhausted)
        #expect(await harness.transport.requests.count == 12 * 3600 / 300 + 1)
    }

    @Test func sentAtIsFreshOnEveryAttempt() async throws {
        let harness = try await Harness([.status(500), .timeout, .status(502)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        let sentAt = try await harness.bodies().compactMap { $0["sentAt"] as? String }
        #expect(
            sentAt == [
                "2026-11-25T10:00:00.000Z", "2026-11-25T10:00:00.500Z", "2026-11-25T10:00:01.500Z",
                "2026-11-25T10:00:03.500Z",
            ])
    }

    @Test func everyRequestCarriesTheHeadersAndTheBatchEnvelope() async throws {
        let harness = try await Harness()
        let pair = try Messages.pair("r1")
        try await harness.pipeline.record(pair)
        await harness.pipeline.flush()
        _ = await harness.finish()
        let request = try #require(await harness.transport.requests.first)
        #expect(request.method == "POST")
        #expect(request.url.absoluteString == "https://api.segment.io/v1/batch")
        #expect(
            request.headerFields == [
                "Content-Type": "application/json",
                "Authorization": "Basic " + Data("wk_secret_123:".utf8).base64EncodedString(),
                "User-Agent": "refiner-segment-swift/" + LibraryInfo.refinerSegment.version,
                "X-Retry-Count": "0",
            ])
        #expect(request.timeout == .seconds(30))
        #expect(request.body == SegmentBatch.encode(pair, sentAt: harness.clock.date, writeKey: Harness.writeKey))
    }

    @Test func theWriteKeyNeverAppearsInReports() async throws {
        struct LeakyError: Error, CustomStringConvertible {
            var description: String { "failed with Authorization: Basic d2tfc2VjcmV0XzEyMzo= key wk_secret_123" }
        }
        let harness = try await Harness([.fail(LeakyError()), .status(401, body: "bad key wk_secret_123")])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        #expect(outcomes.map(\.name) == ["retrying", "failed"])
        let texts =
            outcomes.map { String(describing: $0) } + outcomes.map { String(reflecting: $0) }
            + [String(describing: harness.pipeline)] + (await harness.transport.requests).map { "\($0)" }
        var dumped = ""
        dump(await harness.transport.requests, to: &dumped)
        dump(harness.pipeline, to: &dumped)
        for text in texts + [dumped] {
            #expect(!text.contains("wk_secret_123"))
            #expect(!text.contains("d2tfc2VjcmV0XzEyMzo="))
        }
        #expect(outcomes.last?.reason?.responseBody == "bad key <redacted>")
    }

    /// A server that echoes the request puts the key anywhere in its answer, also across the 1,024-byte cut
    /// of the reported body, where a key cut in two used to escape redaction.
    @Test(arguments: [990, 1000, 1010, 1015, 1020, 1023, 1024])
    func aKeyAcrossTheCutOfTheReportedAnswerIsNotShownInPart(offset: Int) async throws {
        let basic = String(Harness.writeKey.basicAuthorization.dropFirst("Basic ".count))
        let body = String(repeating: ".", count: offset) + "wk_secret_123" + " " + basic
        let harness = try await Harness([.status(400, body: body)])
        try await harness.pipeline.record([Messages.sized("m1", size: 100)])
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        let reported = try #require(outcomes.last?.reason?.responseBody)
        #expect(reported.utf8.count <= 1024)
        #expect(!reported.contains("wk_sec"))
        #expect(!reported.contains(String(basic.prefix(6))))
        #expect(reported.hasPrefix(String(repeating: ".", count: 100)), "the excerpt is short now")
    }

    @Test func defaultJitterWaitsBetweenHalfAndAllOfTheBackoff() {
        for _ in 0..<200 {
            let delay = SegmentPipeline.equalJitter(.seconds(8))
            #expect(delay >= .seconds(4) && delay <= .seconds(8))
        }
    }
}

@Suite struct RetryPolicyTests {
    @Test(arguments: [
        (200, SegmentRetryPolicy.Disposition.success), (204, .success), (400, .drop), (401, .drop), (403, .drop),
        (404, .drop), (413, .drop), (422, .drop), (418, .drop), (408, .retry), (410, .retry), (429, .retry),
        (460, .retry), (500, .retry), (501, .drop), (502, .retry), (503, .retry), (504, .retry), (505, .drop),
        (511, .retry), (302, .drop), (100, .drop),
    ])
    func statusDisposition(status: Int, expected: SegmentRetryPolicy.Disposition) {
        #expect(SegmentRetryPolicy.disposition(forStatus: status) == expected)
    }

    @Test(arguments: [
        (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 128.0), (10, 256.0), (11, 300.0), (100, 300.0),
    ])
    func backoffDoublesUpToTheCap(failures: Int, seconds: Double) {
        #expect(SegmentRetryPolicy().backoff(afterFailures: failures) == .seconds(seconds))
    }

    @Test(
        arguments: [
            ("3", 3.0), ("  12 ", 12.0), ("300", 300.0), ("3600", 300.0), ("0", nil), ("-5", nil), ("soon", nil),
            ("", nil), ("Wed, 25 Nov 2026 10:01:00 GMT", 60.0), ("Wednesday, 25-Nov-26 10:00:30 GMT", 30.0),
            ("Wed, 25 Nov 2026 09:00:00 GMT", nil), ("Wed, 25 Nov 2026 10:00:00 PST", nil),
        ] as [(String, Double?)])
    func retryAfterValues(value: String, seconds: Double?) {
        let now = Date(timeIntervalSince1970: 1_795_600_800)  // Wed, 25 Nov 2026 10:00:00 GMT
        #expect(SegmentRetryPolicy().retryAfter(value, now: now) == seconds.map { .seconds($0) })
    }
}

@Suite struct EndpointTests {
    @Test(arguments: [
        ("https://api.segment.io", false, true), ("https://collector.example.com/segment/", false, true),
        ("http://127.0.0.1:8080", false, true), ("http://localhost:9000", false, true),
        ("http://[::1]:80", false, true),
        ("http://collector.example.com", false, false), ("http://collector.example.com", true, true),
        ("ftp://collector.example.com", true, false), ("https://", false, false),
    ])
    func endpointSchemes(url: String, allowsInsecureHTTP: Bool, accepted: Bool) throws {
        var configuration = SegmentPipeline.Configuration()
        configuration.endpoint = SegmentEndpoint(baseURL: try #require(URL(string: url)))
        configuration.allowsInsecureHTTP = allowsInsecureHTTP
        let made = try? SegmentPipeline(
            writeKey: WriteKey("k"), transport: RecordingTransport(), configuration: configuration)
        #expect((made != nil) == accepted)
    }

    @Test(arguments: [
        ("us", "https://api.segment.io/v1/batch"), ("eu", "https://events.eu1.segmentapis.com/v1/batch"),
        ("EU", "https://events.eu1.segmentapis.com/v1/batch"),
    ])
    func regions(name: String, batchURL: String) {
        #expect(SegmentEndpoint(region: name)?.batchURL.absoluteString == batchURL)
    }

    @Test func unknownRegionIsNil() {
        #expect(SegmentEndpoint(region: "ap") == nil)
    }

    @Test func customBaseURLGetsOneSlashBeforeThePath() throws {
        let endpoint = SegmentEndpoint(baseURL: try #require(URL(string: "https://proxy.example.com/segment/")))
        #expect(endpoint.batchURL.absoluteString == "https://proxy.example.com/segment/v1/batch")
    }

    @Test func emptyWriteKeyIsRefused() {
        #expect(throws: SegmentDeliveryError.self) {
            _ = try SegmentPipeline(writeKey: WriteKey(""), transport: RecordingTransport())
        }
    }
}
