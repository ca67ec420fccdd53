import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentTesting
import RefinerSegmentURLSession
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The write key never shows: not in a description, debug description or `dump` of anything the pipeline
/// hands out, not in an error or an outcome, not in the CLI's output or failed file, whatever fails.
@Suite struct SecretsTests {
    static let key = "wk_Zq8SECRETx7Kv2LEAKp9Wm"
    static let writeKey = WriteKey(key)
    /// The key, its Basic credentials, and every 10-character piece of either: a cut-off key leaks too.
    static let forbidden: [String] = {
        let basic = String(writeKey.basicAuthorization.dropFirst("Basic ".count))
        var pieces: Set<String> = [key, basic]
        for secret in [key, basic] {
            let characters = Array(secret)
            for start in 0...(characters.count - 10) { pieces.insert(String(characters[start..<start + 10])) }
        }
        return pieces.sorted()
    }()

    /// Every text form of a value: description, debug description, dump.
    static func texts(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return [String(describing: value), String(reflecting: value), dumped]
    }

    static func expectNoSecret(_ text: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        if let piece = forbidden.first(where: { text.contains($0) }) {
            Issue.record(
                "\(what) shows the write key ('\(piece)'): \(text.prefix(2000))", sourceLocation: sourceLocation)
        }
    }

    static func expectNoSecret(in value: Any, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for text in texts(value) { expectNoSecret(text, what, sourceLocation: sourceLocation) }
    }

    /// An answer that echoes the request back: its headers (the Basic credentials) and its body (which
    /// carries the write key, as Segment's API wants), with the key straddling the 1,024-byte cut of a
    /// reported answer body.
    static func echo(_ status: Int, headerFields: [String: String] = [:])
        -> @Sendable (LoopbackHTTPServer.Request)
        -> LoopbackHTTPServer.Answer
    {
        { request in
            let headers = request.headerFields.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "\n")
            let padding = String(repeating: ".", count: 1024 - 12)
            let text = padding + key + "\n" + headers + "\n" + String(decoding: request.body, as: UTF8.self)
            return .respond(SegmentResponse(statusCode: status, headerFields: headerFields, body: Array(text.utf8)))
        }
    }

    /// Runs a pipeline against a server until it is shut down and checks everything it showed.
    func exercise(
        _ name: String,
        server: LoopbackHTTPServer,
        configure: (inout SegmentPipeline.Configuration) -> Void = { _ in },
        deadline: TimeInterval = 60  // a bound, not a wait: a loaded CI machine may need it
    ) async throws -> [SegmentOutcome] {
        var configuration = SegmentPipeline.Configuration(endpoint: SegmentEndpoint(baseURL: server.baseURL))
        configuration.retry = SegmentRetryPolicy(
            baseDelay: .milliseconds(1), maximumDelay: .milliseconds(5), maximumAttempts: 3,
            maximumRetryAfter: .milliseconds(5))
        configuration.requestTimeout = .milliseconds(500)
        configuration.shutdownGracePeriod = .milliseconds(Int64(deadline * 1000))
        configure(&configuration)
        let pipeline = try SegmentPipeline(
            writeKey: Self.writeKey, transport: URLSessionTransport(), configuration: configuration)
        let stream = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = await pipeline.start()
        let builder = try SegmentCallBuilder()
        let store = MemoryProfileStore()
        for index in 0..<3 {
            try await pipeline.record(
                Responses.make("\(name)-\(index)", user: "u\(index)", account: "a"), profiles: store,
                builder: builder)
        }
        let returned = await pipeline.shutDown(running)
        var outcomes: [SegmentOutcome] = []
        for await outcome in stream { outcomes.append(outcome) }
        Self.expectNoSecret(in: pipeline, "\(name): the pipeline")
        Self.expectNoSecret(in: pipeline.configuration, "\(name): the configuration")
        Self.expectNoSecret(in: await pipeline.counters, "\(name): the counters")
        Self.expectNoSecret(in: returned, "\(name): the messages handed back")
        for outcome in outcomes {
            Self.expectNoSecret(in: outcome, "\(name): an outcome")
            let messages: [SegmentMessage]
            switch outcome {
            case .failed(let failed, _): messages = failed
            case .handedBack(let handedBack): messages = handedBack
            default: messages = []
            }
            for message in messages {
                Self.expectNoSecret(String(decoding: message.json, as: UTF8.self), "\(name): a message's JSON")
            }
        }
        return outcomes
    }

    @Test func noSecretWhenTheServerRefusesAndEchoesTheRequest() async throws {
        let server = try LoopbackHTTPServer(handler: Self.echo(400))
        defer { server.stop() }
        let outcomes = try await exercise("refused", server: server)
        #expect(outcomes.contains { if case .failed(_, let reason) = $0 { reason.statusCode == 400 } else { false } })
        // The server did get the key: it is there, in the request, where Segment's API wants it.
        #expect(server.requests.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains(Self.key) })
    }

    @Test func noSecretWhenRetriesRunOutOnEchoed500s() async throws {
        let server = try LoopbackHTTPServer(handler: Self.echo(500))
        defer { server.stop() }
        let outcomes = try await exercise("exhausted", server: server)
        #expect(outcomes.contains { $0.reason?.code == .attemptsExhausted })
    }

    @Test func noSecretWhenRateLimitedWithAnEcho() async throws {
        let count = Locked(0)
        let echo = Self.echo(429, headerFields: ["Retry-After": "1"])
        let server = try LoopbackHTTPServer { request in
            let attempt = count.withLock { value -> Int in
                value += 1
                return value
            }
            return attempt <= 2 ? echo(request) : .status(200)
        }
        defer { server.stop() }
        let outcomes = try await exercise("rate limited", server: server)
        #expect(outcomes.contains { $0.reason?.statusCode == 429 })
    }

    @Test(arguments: ["reset", "stall", "refused connection"])
    func noSecretWhenTheNetworkFails(_ fault: String) async throws {
        let server = try LoopbackHTTPServer { _ in fault == "reset" ? .reset : .hold }
        defer { server.stop() }
        if fault == "refused connection" { server.stop() }
        let outcomes = try await exercise(fault, server: server)
        #expect(outcomes.contains { $0.reason?.code == .transportFailure || $0.reason?.code == .attemptsExhausted })
    }

    @Test func noSecretWhenShutdownHandsBack() async throws {
        let server = try LoopbackHTTPServer { _ in .hold }
        defer { server.stop() }
        let outcomes = try await exercise(
            "handed back", server: server, configure: { $0.requestTimeout = .seconds(30) },
            deadline: 0.3)
        #expect(outcomes.contains { if case .handedBack = $0 { true } else { false } })
    }

    @Test func noSecretInRequestsResponsesOrConfigurationErrors() async throws {
        let transport = ScriptedTransport([.status(200, body: "{}")])
        let pipeline = try SegmentPipeline(writeKey: Self.writeKey, transport: transport)
        let running = await pipeline.start()
        try await pipeline.record(
            try SegmentCallBuilder().process(
                Responses.make("r", user: "u", account: "a"), profile: CollectedProfile()
            ).messages)
        await pipeline.flush()
        await pipeline.shutDown(running)
        let request = try #require(await transport.requests.first)
        #expect(request.headerField("Authorization") == Self.writeKey.basicAuthorization)
        Self.expectNoSecret(in: request, "a request")
        Self.expectNoSecret(in: SegmentResponse(statusCode: 200, body: Array("{}".utf8)), "a response")
        Self.expectNoSecret(in: Self.writeKey, "the write key itself")
        for endpoint in ["http://collector.example.com", "ftp://example.com"] {
            let configuration = SegmentPipeline.Configuration(
                endpoint: SegmentEndpoint(baseURL: URL(string: endpoint)!))
            do {
                _ = try SegmentPipeline(writeKey: Self.writeKey, transport: transport, configuration: configuration)
                Issue.record("\(endpoint) was accepted")
            } catch {
                Self.expectNoSecret(in: error, "a configuration error")
            }
        }
    }

    // MARK: Encoded forms of the key

    /// A key with every character that changes when encoded: JSON escapes `"` and `\\`, some servers `/`,
    /// percent-encoding `%`, `+` and the rest.
    static let encodableKey = #"wk_"Q8\x/LEAK%p+9=&"#

    /// The key as a server may say it back: raw, in its Basic credentials, JSON-escaped (with and without
    /// `\/`), percent-encoded in either case of hex.
    static let encodedForms: [String] = {
        let key = encodableKey
        let basic = String(WriteKey(key).basicAuthorization.dropFirst("Basic ".count))
        return [
            key, #"wk_\"Q8\\x/LEAK%p+9=&"#, #"wk_\"Q8\\x\/LEAK%p+9=&"#, "wk_%22Q8%5Cx%2FLEAK%25p%2B9%3D%26",
            "wk_%22Q8%5cx%2fLEAK%25p%2b9%3d%26", basic, basic.replacing("/", with: #"\/"#),
        ]
    }()

    static func expectNoEncodedKey(
        in value: Any, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for text in texts(value) {
            // "LEAK" is in every form: a part of the key that escaped redaction shows too.
            if let form = encodedForms.first(where: { text.contains($0) }) ?? (text.contains("LEAK") ? "LEAK" : nil) {
                Issue.record(
                    "\(what) shows the write key as '\(form)': \(text.prefix(2000))", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func aRefusalQuotingTheKeyInAnyEncodingShowsNoneOfThem() async throws {
        for form in Self.encodedForms {
            let transport = ScriptedTransport([.status(401, body: "unknown key " + form + " for this source")])
            let pipeline = try SegmentPipeline(writeKey: WriteKey(Self.encodableKey), transport: transport)
            let stream = await pipeline.outcomes(bufferingPolicy: .unbounded)
            let running = await pipeline.start()
            try await pipeline.record(
                try SegmentCallBuilder().process(
                    Responses.make("r", user: "u", account: "a"), profile: CollectedProfile()
                ).messages)
            await pipeline.flush()
            await pipeline.shutDown(running)
            var outcomes: [SegmentOutcome] = []
            for await outcome in stream { outcomes.append(outcome) }
            let reason = try #require(outcomes.last?.reason)
            #expect(reason.responseBody == "unknown key <redacted> for this source", "\(form)")
            Self.expectNoEncodedKey(in: outcomes, "a refusal quoting \(form)")
        }
    }

    @Test func aTransportErrorQuotingTheKeyInAnyEncodingShowsNoneOfThem() async throws {
        struct LeakyError: Error, CustomStringConvertible {
            var description: String { "could not send " + SecretsTests.encodedForms.joined(separator: " and ") }
        }
        let transport = ScriptedTransport([.fail(LeakyError())])
        var configuration = SegmentPipeline.Configuration()
        configuration.retry = SegmentRetryPolicy(maximumAttempts: 1)
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey(Self.encodableKey), transport: transport, configuration: configuration)
        let stream = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = await pipeline.start()
        try await pipeline.record(
            try SegmentCallBuilder().process(
                Responses.make("r", user: "u", account: "a"), profile: CollectedProfile()
            ).messages)
        await pipeline.flush()
        await pipeline.shutDown(running)
        var outcomes: [SegmentOutcome] = []
        for await outcome in stream { outcomes.append(outcome) }
        #expect(outcomes.last?.reason?.underlyingDescription?.contains("could not send <redacted>") == true)
        Self.expectNoEncodedKey(in: outcomes, "a transport failure")
    }

    @Test func anEchoOfTheRequestOverHTTPShowsTheKeyInNoEncoding() async throws {
        // The server says back the request's headers and its JSON body, where the key is JSON-escaped.
        let server = try LoopbackHTTPServer { request in
            let headers = request.headerFields.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "\n")
            let text = "you sent " + headers + "\n" + String(decoding: request.body, as: UTF8.self)
            return .respond(SegmentResponse(statusCode: 400, body: Array(text.utf8)))
        }
        defer { server.stop() }
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey(Self.encodableKey), transport: URLSessionTransport(),
            configuration: SegmentPipeline.Configuration(endpoint: SegmentEndpoint(baseURL: server.baseURL)))
        let stream = await pipeline.outcomes(bufferingPolicy: .unbounded)
        let running = await pipeline.start()
        try await pipeline.record(
            try SegmentCallBuilder().process(
                Responses.make("r", user: "u", account: "a"), profile: CollectedProfile()
            ).messages)
        await pipeline.flush()
        await pipeline.shutDown(running)
        var outcomes: [SegmentOutcome] = []
        for await outcome in stream { outcomes.append(outcome) }
        #expect(outcomes.last?.reason?.statusCode == 400)
        // The server did get the key, JSON-escaped in the body.
        #expect(server.requests.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains(Self.encodedForms[1]) })
        Self.expectNoEncodedKey(in: outcomes, "an echo")
    }

    @Test func sendRefusesAKeyWithALineBreakWithoutShowingIt() async throws {
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(input: [], environment: ["SEGMENT_WRITE_KEY": Self.key + "\n"])
        ).run(["send"])
        #expect(status == 2)
        #expect(capture.error.contains("line break"), "\(capture.error)")
        Self.expectNoSecret(in: capture, "send with a key ending in a line break")
    }

    @Test(arguments: [
        "https://user:pw-LEAK@collector.example.com", "https://collector.example.com/?token=LEAK",
        "https://collector.example.com/#LEAK",
    ])
    func sendRefusesAnEndpointWithCredentialsQueryOrFragmentWithoutShowingThem(_ endpoint: String) async throws {
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(input: [], environment: ["SEGMENT_WRITE_KEY": Self.key])
        ).run(["send", "--endpoint", endpoint])
        #expect(status == 2)
        #expect(capture.error.contains("collector.example.com"), "\(capture.error)")
        #expect(!capture.error.contains("LEAK"), "\(capture.error)")
    }

    /// A value that is not a URL at all (a space in the user part) is not repeated either: it may hold a password.
    @Test func sendRefusesAnUnreadableEndpointWithoutRepeatingIt() async throws {
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(
            io: capture.io(input: [], environment: ["SEGMENT_WRITE_KEY": Self.key])
        ).run(["send", "--endpoint", "https://user:pw LEAK@collector example com"])
        #expect(status == 2)
        #expect(capture.error.contains("--endpoint takes a URL"), "\(capture.error)")
        #expect(!capture.error.contains("LEAK"), "\(capture.error)")
    }

    // MARK: The command-line tool

    static func runSend(
        server: LoopbackHTTPServer,
        arguments: [String] = [],
        interruptWhen: (@Sendable () -> Bool)? = nil
    ) async -> (status: Int32, capture: ToolCapture) {
        let (interruptions, interrupt) = AsyncStream.makeStream(of: Int32.self)
        let capture = ToolCapture()
        let tool = RefinerSegmentTool(
            io: capture.io(
                input: Array(SendInput.responses(4, tag: "cli").utf8), environment: ["SEGMENT_WRITE_KEY": key],
                interruptions: interruptions))
        async let status = tool.run(
            ["send", "--endpoint", server.baseURL.absoluteString, "--failed", "failed.jsonl"] + arguments)
        if let interruptWhen {
            _ = await eventually(interruptWhen)
            interrupt.yield(SIGINT)
        }
        return (await status, capture)
    }

    static func expectNoSecret(
        in capture: ToolCapture, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        expectNoSecret(capture.output, "\(what): stdout", sourceLocation: sourceLocation)
        expectNoSecret(capture.error, "\(what): stderr", sourceLocation: sourceLocation)
        for (path, bytes) in capture.files {
            expectNoSecret(String(decoding: bytes, as: UTF8.self), "\(what): \(path)", sourceLocation: sourceLocation)
        }
    }

    @Test func sendShowsNoSecretWhenTheServerRefusesAndEchoes() async throws {
        let server = try LoopbackHTTPServer(handler: Self.echo(400))
        defer { server.stop() }
        let (status, capture) = await Self.runSend(server: server)
        #expect(status == 1)
        #expect(capture.error.contains("HTTP 400"))
        #expect(capture.files["failed.jsonl"] != nil)
        Self.expectNoSecret(in: capture, "send refused")
    }

    @Test func sendShowsNoSecretWhenInterruptedWhileTheServerStalls() async throws {
        let server = try LoopbackHTTPServer { _ in .hold }
        defer { server.stop() }
        let (status, capture) = await Self.runSend(server: server, interruptWhen: { !server.requests.isEmpty })
        #expect(status == 128 + SIGINT)
        #expect(capture.files["failed.jsonl"] != nil)
        Self.expectNoSecret(in: capture, "send interrupted")
    }

    @Test(arguments: [["--endpoint", "http://collector.example.com"], ["--region", "mars"], ["--bogus"]])
    func sendShowsNoSecretOnAUsageError(_ arguments: [String]) async throws {
        let capture = ToolCapture()
        let status = await RefinerSegmentTool(io: capture.io(input: [], environment: ["SEGMENT_WRITE_KEY": Self.key]))
            .run(["send"] + arguments)
        #expect(status == 2)
        Self.expectNoSecret(in: capture, "send usage error")
    }
}
