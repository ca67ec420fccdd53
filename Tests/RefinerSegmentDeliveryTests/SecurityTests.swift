import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// The checks a pipeline makes when it is made, so that the write key and the data go only where they
/// should (issue 17), and what a failure reason may say of a server's answer.
@Suite struct SecurityTests {
    static func make(
        key: String = "wk_secret_123",
        _ configure: (inout SegmentPipeline.Configuration) -> Void
    ) throws(SegmentDeliveryError) -> SegmentPipeline {
        var configuration = SegmentPipeline.Configuration()
        configure(&configuration)
        return try SegmentPipeline(
            writeKey: WriteKey(key), transport: ScriptedTransport([]), configuration: configuration)
    }

    static func refusal(
        key: String = "wk_secret_123",
        _ configure: (inout SegmentPipeline.Configuration) -> Void
    ) -> SegmentDeliveryError? {
        do {
            _ = try make(key: key, configure)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Plain HTTP only to loopback (item 4)

    @Test(arguments: [
        "http://127.0.0.1:8080", "http://127.255.255.254", "http://127.0.0.1", "http://localhost:9000",
        "http://LOCALHOST", "http://[::1]:8080", "https://127.0.0.1.nip.io",
    ])
    func plainHTTPIsAcceptedOnLoopback(_ url: String) throws {
        _ = try Self.make { $0.endpoint = SegmentEndpoint(baseURL: URL(string: url)!) }
    }

    @Test(arguments: [
        "http://127.0.0.1.nip.io", "http://127.0.0.1.example.com:8080", "http://127.evil.example", "http://127.1",
        "http://127.000.000.001", "http://0127.0.0.1", "http://128.0.0.1", "http://10.0.0.1",
        "http://localhost.example.com", "http://localhost.", "http://[::ffff:7f00:1]", "http://[::2]",
    ])
    func plainHTTPIsRefusedOffLoopback(_ url: String) throws {
        let endpoint = SegmentEndpoint(baseURL: URL(string: url)!)
        #expect(!endpoint.isLoopback)
        let error = try #require(Self.refusal { $0.endpoint = endpoint })
        #expect(error.code == .invalidConfiguration)
        #expect(error.detail.contains("not loopback"))
        // The explicit opt-in still works, for a collector on a private network.
        _ = try Self.make {
            $0.endpoint = endpoint
            $0.allowsInsecureHTTP = true
        }
    }

    // MARK: No query, fragment or credentials in the endpoint (item 8)

    @Test(arguments: [
        ("https://collector.example.com?token=s3cr3t", "query"), ("https://collector.example.com/?x=1", "query"),
        ("https://collector.example.com#s3cr3t", "fragment"),
        ("https://user:s3cr3t@collector.example.com", "user name or password"),
        ("https://s3cr3t@collector.example.com", "user name or password"),
        ("http://user:s3cr3t@127.0.0.1:8080", "user name or password"),
    ])
    func anEndpointWithAQueryFragmentOrCredentialsIsRefusedWithoutShowingThem(_ url: String, what: String) throws {
        let endpoint = SegmentEndpoint(baseURL: URL(string: url)!)
        let error = try #require(Self.refusal { $0.endpoint = endpoint })
        #expect(error.code == .invalidConfiguration)
        #expect(error.detail.contains(what), "\(error)")
        #expect(!error.description.contains("s3cr3t"), "\(error)")
        #expect(!String(describing: endpoint).contains("s3cr3t"))
        #expect(error.description.contains("collector.example.com") || error.description.contains("127.0.0.1"))
    }

    @Test func anEndpointDescriptionShowsAPlainURLAsItIs() {
        let endpoint = SegmentEndpoint(baseURL: URL(string: "https://proxy.example.com:8443/segment")!)
        #expect(endpoint.description == "https://proxy.example.com:8443/segment")
        #expect(
            SegmentEndpoint(baseURL: URL(string: "https://me:pw@proxy.example.com/s?q=1#f")!).description
                == "https://proxy.example.com/s")
    }

    // MARK: The write key is checked, and never shown (item 9)

    @Test(arguments: [
        ("", "is empty"), ("wk_secret_123\n", "line break"), ("wk_secret_123\r\n", "line break"),
        ("wk secret", "a space"), ("wk_\u{07}secret", "a control character"),
        ("wk_\u{7F}secret", "a control character"),
        ("wk_sécret", "outside ASCII"), ("\twk_secret", "a control character"),
        (String(repeating: "k", count: WriteKey.maximumLength + 1), "at most 256"),
    ])
    func aMalformedWriteKeyIsRefusedWithoutShowingIt(_ key: String, what: String) throws {
        let error = try #require(Self.refusal(key: key) { _ in })
        #expect(error.code == .invalidConfiguration)
        #expect(error.detail.contains(what), "\(error)")
        if !key.isEmpty {
            #expect(!error.description.contains("secret") && !error.description.contains("kkkkkkkk"), "\(error)")
        }
    }

    @Test(arguments: [
        "wk", "wk_secret_123", ##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##,
        String(repeating: "k", count: WriteKey.maximumLength),
    ])
    func aWellFormedWriteKeyIsAccepted(_ key: String) throws {
        _ = try Self.make(key: key) { _ in }
    }

    @Test func everyEncodedFormOfTheKeyIsRedacted() {
        let key = WriteKey(#"wk"q\s/p%+"#)
        let basic = String(key.basicAuthorization.dropFirst("Basic ".count))
        let forms = key.redactedForms
        for form in [
            key.rawValue, #"wk\"q\\s/p%+"#, #"wk\"q\\s\/p%+"#, "wk%22q%5Cs%2Fp%25%2B", "wk%22q%5cs%2fp%25%2b", basic,
        ] {
            #expect(forms.contains(form), "\(form)")
        }
        #expect(zip(forms, forms.dropFirst()).allSatisfy { $0.utf8.count >= $1.utf8.count }, "longest first")
    }

    // MARK: Library information reaches the User-Agent only as tokens (item 11)

    @Test(arguments: [
        LibraryInfo(name: "host-app\r\nX-Injected: 1", version: "1.0"),
        LibraryInfo(name: "host-app", version: "1.0\n"), LibraryInfo(name: "host app", version: "1.0"),
        LibraryInfo(name: "", version: "1.0"), LibraryInfo(name: "host-app", version: ""),
        LibraryInfo(name: "host/app", version: "1.0"), LibraryInfo(name: "hôte", version: "1.0"),
        LibraryInfo(name: "host-app", version: String(repeating: "9", count: LibraryInfo.maximumLength + 1)),
    ])
    func libraryInformationThatIsNotAHeaderTokenIsAProgrammingErrorReportedAtOnce(_ library: LibraryInfo) throws {
        let error = try #require(Self.refusal { $0.library = library })
        #expect(error.code == .invalidConfiguration)
        #expect(error.detail.contains("User-Agent"))
        #expect(!error.description.unicodeScalars.contains { $0.value < 0x20 }, "the report stays on one line")
    }

    @Test func tokenLibraryInformationIsAcceptedAndSent() async throws {
        let harness = try await Harness {
            $0.library = LibraryInfo(name: "acme-backfill", version: "2.1.0-rc.1+build.7")
        }
        try await harness.pipeline.record(try Messages.pair("r1"))
        _ = await harness.finish()
        let request = try #require(await harness.transport.requests.first)
        #expect(request.headerField("User-Agent") == "acme-backfill/2.1.0-rc.1+build.7")
    }

    // MARK: Failure reasons hold no personal data (item 10)

    @Test func aRefusalThatEchoesTheRequestIsReportedByItsLengthOnly() async throws {
        let harness = try await Harness([.status(400)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        // The answer the scripted transport gave had no body: replay the request as an echoing proxy would.
        let sent = try #require(await harness.transport.requests.first).body
        _ = await harness.finish()
        let echo = Array("request was: ".utf8) + sent
        let reported = try #require(
            ResponseExcerpt.describe(
                response: echo, sent: sent, secrets: Harness.writeKey.redactedForms))
        #expect(reported == "(\(echo.count) bytes, not shown: it repeats the request)")
    }

    @Test func aPipelineReportsNoEmailFromAnEchoingServer() async throws {
        let answer = #"{"error":"invalid","email":"john.doe@example.com"}"#
        let harness = try await Harness([.status(400, body: answer)])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        let reason = try #require(outcomes.last?.reason)
        #expect(reason.statusCode == 400)
        #expect(reason.responseBody == "(\(answer.utf8.count) bytes, not shown: it repeats the request)")
        #expect(!reason.description.contains("john.doe"))
    }

    @Test func aServersOwnWordsAreShownShortAndEscaped() throws {
        let sent = Array(#"{"batch":[{"userId":"u-1","traits":{"email":"a@example.com"}}],"writeKey":"wk"}"#.utf8)
        let short = Array("Invalid JSON\r\nX-Forged: yes".utf8)
        #expect(
            ResponseExcerpt.describe(response: short, sent: sent, secrets: [])
                == #"Invalid JSON\r\nX-Forged: yes"#)
        let long = Array(String(repeating: "overloaded ", count: 100).utf8)
        let reported = try #require(ResponseExcerpt.describe(response: long, sent: sent, secrets: []))
        #expect(reported.hasSuffix("... (1100 bytes)"))
        #expect(reported.utf8.count <= ResponseExcerpt.maximumBytes + 20)
        #expect(ResponseExcerpt.describe(response: [], sent: sent, secrets: []) == nil)
    }

    @Test func anExcerptCarryingAShortValueOfTheRequestIsNotShown() {
        let sent = Array(#"{"batch":[{"userId":"u-17","traits":{"email":"a@b.io"}}]}"#.utf8)
        for answer in ["no such user u-17", "bad address a@b.io"] {
            #expect(
                ResponseExcerpt.describe(response: Array(answer.utf8), sent: sent, secrets: [])
                    == "(\(answer.utf8.count) bytes, not shown: it repeats the request)", "\(answer)")
        }
        // A JSON key of the request in the answer is not personal data.
        #expect(
            ResponseExcerpt.describe(response: Array("userId missing".utf8), sent: sent, secrets: [])
                == "userId missing")
    }

    @Test func anEchoOfTheEndOfAFullBatchIsFoundToo() throws {
        // A 500 KB request whose last user id the server quotes in a long answer of its own.
        var sent = Array(#"{"batch":["#.utf8)
        for index in 0..<7_000 {
            sent += Array(#"{"type":"identify","userId":"user-\#(index)","traits":{"x":1}},"#.utf8)
        }
        sent += Array(#"{}],"writeKey":"wk_secret_123"}"#.utf8)
        #expect(sent.count > 400_000)
        let answer = Array(("unknown user user-6999; " + String(repeating: "see the docs ", count: 30)).utf8)
        let reported = ResponseExcerpt.describe(response: answer, sent: sent, secrets: [])
        #expect(reported == "(\(answer.count) bytes, not shown: it repeats the request)")
        let own = Array(("upstream timed out; " + String(repeating: "retry later ", count: 30)).utf8)
        #expect(
            ResponseExcerpt.describe(response: own, sent: sent, secrets: [])?.hasPrefix("upstream timed out") == true)
    }

    @Test(arguments: [140, 150, 155, 159, 160, 165])
    func aKeyAcrossTheCutOfTheExcerptIsNotShownInPart(offset: Int) throws {
        let key = "wk_secret_123"
        let body = Array((String(repeating: ".", count: offset) + key + " and more").utf8)
        let reported = try #require(
            ResponseExcerpt.describe(response: body, sent: [], secrets: WriteKey(key).redactedForms))
        #expect(!reported.contains("wk_sec") && !reported.contains("wk"))
        #expect(reported.hasPrefix(String(repeating: ".", count: min(offset, ResponseExcerpt.maximumBytes))))
    }

    @Test func aKeyTheAnswerItselfCutsShortIsNotShownInPart() throws {
        let body = Array("bad key wk_secr".utf8)
        let reported = try #require(
            ResponseExcerpt.describe(response: body, sent: [], secrets: WriteKey("wk_secret_123").redactedForms))
        #expect(reported == "bad key ... (15 bytes)")
    }

    @Test func theExcerptIsCutAtACharacterBoundary() throws {
        let body = Array((String(repeating: "a", count: ResponseExcerpt.maximumBytes - 1) + "é and more").utf8)
        let reported = try #require(ResponseExcerpt.describe(response: body, sent: [], secrets: []))
        #expect(!reported.contains("\u{FFFD}"))
        #expect(reported.hasPrefix(String(repeating: "a", count: ResponseExcerpt.maximumBytes - 1) + "..."))
    }
}
