import Foundation
import RefinerSegment

/// Checks that a ``SegmentTransport`` keeps the protocol's promises, against a loopback server it starts
/// itself: run it from a host's test suite, whatever the test framework.
///
/// ```swift
/// @Test func myTransportIsCompatible() async throws {
///     try await TransportCompatibilityTest(transport: MyVaporTransport(client: app.client)).run()
/// }
/// ```
///
/// The checks: the method, path, headers and body (UTF-8 with non-ASCII text, and a full 500 KB body) reach
/// the server exactly; 400, 429 and 500 answers come back as responses with their status, headers
/// (`Retry-After`) and body, not as errors; a 301, 302, 303, 307 or 308 comes back as that answer with its
/// `Location`, never followed; cancelling the calling task makes `send` throw; and (unless turned off) a
/// server that never answers, or that sends its head and then nothing, makes `send` throw once the request's
/// timeout has passed.
/// The cancellation and timeout checks use real time: each is given a generous allowance before it is
/// declared a failure, so they never fail on a slow machine, only on a transport that hangs.
public struct TransportCompatibilityTest: Sendable {
    /// The checks that failed, each in words.
    public struct Failure: Error, Hashable, CustomStringConvertible {
        /// One line per failed check.
        public var failures: [String]
        /// The failed checks, one per line.
        public var description: String {
            "the transport failed \(failures.count) compatibility check(s):\n" + failures.joined(separator: "\n")
        }
    }

    /// The transport under test.
    public var transport: any SegmentTransport
    /// Whether to check that a request times out (takes about one second of real time).
    public var checksTimeout: Bool

    /// Creates the test for a transport.
    public init(transport: any SegmentTransport, checksTimeout: Bool = true) {
        self.transport = transport
        self.checksTimeout = checksTimeout
    }

    /// Runs every check.
    ///
    /// - Throws: ``Failure`` listing the checks that failed; the loopback server's error if it cannot start.
    public func run() async throws {
        let server = try LoopbackHTTPServer { request in
            switch request.path {
            case "/status/400":
                return .respond(SegmentResponse(statusCode: 400, body: Array(#"{"error":"bad request"}"#.utf8)))
            case "/status/429":
                return .respond(SegmentResponse(statusCode: 429, headerFields: ["Retry-After": "7"], body: []))
            case "/status/500":
                return .respond(SegmentResponse(statusCode: 500, body: Array("oops".utf8)))
            case "/hold":
                return .hold
            case "/head-then-silence":
                return .headThenSilence(
                    SegmentResponse(statusCode: 200, body: Array(repeating: UInt8(ascii: "x"), count: 64)))
            case let path where path.hasPrefix("/redirect/"):
                let status = Int(path.dropFirst("/redirect/".count)) ?? 302
                return .respond(
                    SegmentResponse(
                        statusCode: status, headerFields: ["Location": "/redirected"],
                        body: Array("moved".utf8)))
            default:
                return .respond(
                    SegmentResponse(
                        statusCode: 200, headerFields: ["X-Echo-Length": "\(request.body.count)"],
                        body: Array(#"{"success":true}"#.utf8)))
            }
        }
        defer { server.stop() }
        var failures: [String] = []
        failures += await checkExactRequest(server, bodySize: 0)
        failures += await checkExactRequest(server, bodySize: SegmentBatch.maximumBytes)
        failures += await checkStatus(server, 400, body: #"{"error":"bad request"}"#, header: nil)
        failures += await checkStatus(server, 429, body: "", header: ("retry-after", "7"))
        failures += await checkStatus(server, 500, body: "oops", header: nil)
        for status in [301, 302, 303, 307, 308] { failures += await checkRedirectIsNotFollowed(server, status) }
        failures += await checkCancellation(server)
        if checksTimeout {
            failures += await checkTimeout(server, path: "/hold", what: "a silent server")
            failures += await checkTimeout(server, path: "/head-then-silence", what: "a server silent after its head")
        }
        if !failures.isEmpty { throw Failure(failures: failures) }
    }

    private func url(_ server: LoopbackHTTPServer, _ path: String) -> URL {
        URL(string: server.baseURL.absoluteString + path)!
    }

    private func checkExactRequest(_ server: LoopbackHTTPServer, bodySize: Int) async -> [String] {
        var body = Array(#"{"batch":[{"type":"identify","traits":{"name":"Zoë ✓ 你好"}}],"pad":""#.utf8)
        while body.count < bodySize - 2 { body.append(UInt8(ascii: "x")) }
        body.append(contentsOf: Array(#""}"#.utf8))
        let headers = [
            "Content-Type": "application/json",
            "Authorization": WriteKey("compatibility-key").basicAuthorization,
            "User-Agent": LibraryInfo.refinerSegment.userAgent,
            "X-Retry-Count": "2",
        ]
        let before = server.requests.count
        let request = SegmentRequest(
            url: url(server, "/v1/batch"), method: "POST", headerFields: headers, body: body, timeout: .seconds(30))
        let name = "exact request (\(body.count) bytes)"
        let response: SegmentResponse
        do {
            response = try await transport.send(request)
        } catch {
            return ["\(name): send threw \(error)"]
        }
        var failures: [String] = []
        if response.statusCode != 200 { failures.append("\(name): status \(response.statusCode), expected 200") }
        if response.body != Array(#"{"success":true}"#.utf8) { failures.append("\(name): the response body changed") }
        if response.headerField("x-echo-length") != "\(body.count)" {
            failures.append("\(name): the response header X-Echo-Length is missing or wrong")
        }
        let received = server.requests.dropFirst(before)
        guard received.count == 1, let seen = received.first else {
            return failures + ["\(name): the server saw \(received.count) requests, expected 1"]
        }
        if seen.method != "POST" { failures.append("\(name): method \(seen.method), expected POST") }
        if seen.path != "/v1/batch" { failures.append("\(name): path \(seen.path), expected /v1/batch") }
        for (field, value) in headers where seen.headerField(field) != value {
            failures.append("\(name): header \(field) arrived as \(seen.headerField(field) ?? "nothing")")
        }
        if seen.body != body { failures.append("\(name): the body arrived changed (\(seen.body.count) bytes)") }
        return failures
    }

    private func checkStatus(
        _ server: LoopbackHTTPServer,
        _ status: Int,
        body: String,
        header: (String, String)?
    ) async -> [String] {
        let name = "HTTP \(status) answer"
        let request = SegmentRequest(url: url(server, "/status/\(status)"), body: Array("{}".utf8))
        do {
            let response = try await transport.send(request)
            var failures: [String] = []
            if response.statusCode != status { failures.append("\(name): status \(response.statusCode)") }
            if response.body != Array(body.utf8) { failures.append("\(name): the body changed") }
            if let (field, value) = header, response.headerField(field) != value {
                failures.append("\(name): header \(field) is \(response.headerField(field) ?? "missing")")
            }
            return failures
        } catch {
            return ["\(name): send threw \(error); a status is a response, not an error"]
        }
    }

    private func checkCancellation(_ server: LoopbackHTTPServer) async -> [String] {
        let before = server.requests.count
        let transport = self.transport
        let request = SegmentRequest(url: url(server, "/hold"), body: Array("{}".utf8), timeout: .seconds(600))
        let task = Task { try await transport.send(request) }
        await server.waitForRequests(before + 1)
        task.cancel()
        let outcome = await Self.result(of: task, within: .seconds(20))
        switch outcome {
        case .none: return ["cancellation: send did not return within 20 s of its task being cancelled"]
        case .some(.success): return ["cancellation: send returned a response after its task was cancelled"]
        case .some(.failure): return []
        }
    }

    private func checkTimeout(_ server: LoopbackHTTPServer, path: String, what: String) async -> [String] {
        let transport = self.transport
        let request = SegmentRequest(url: url(server, path), body: Array("{}".utf8), timeout: .seconds(1))
        let task = Task { try await transport.send(request) }
        let outcome = await Self.result(of: task, within: .seconds(30))
        switch outcome {
        case .none:
            task.cancel()
            return ["timeout: send did not throw within 30 s with a 1 s timeout and \(what)"]
        case .some(.success): return ["timeout: send returned a response from \(what)"]
        case .some(.failure): return []
        }
    }

    /// A redirect is an answer, never followed: following one re-sends the batch (and its write key) where it
    /// was never meant to go, or loses its body (a 301, 302 or 303 becomes a GET), and reports the target's
    /// 200 as delivered.
    private func checkRedirectIsNotFollowed(_ server: LoopbackHTTPServer, _ status: Int) async -> [String] {
        let name = "HTTP \(status) redirect"
        let before = server.requests.count
        let request = SegmentRequest(url: url(server, "/redirect/\(status)"), body: Array(#"{"batch":[]}"#.utf8))
        let response: SegmentResponse
        do {
            response = try await transport.send(request)
        } catch {
            return ["\(name): send threw \(error); a redirect is an answer, to be returned as it is"]
        }
        var failures: [String] = []
        if response.statusCode != status {
            failures.append("\(name): status \(response.statusCode); the redirect was followed, or changed")
        }
        if response.headerField("location") != "/redirected" {
            failures.append("\(name): header Location is \(response.headerField("location") ?? "missing")")
        }
        let followed = server.requests.dropFirst(before).filter { $0.path == "/redirected" }
        if !followed.isEmpty {
            failures.append("\(name): the transport followed it (\(followed.count) request(s) to the Location)")
        }
        return failures
    }

    /// The task's result, or `nil` when it has not finished within `limit` (real time: a guard against a
    /// transport that hangs, not a measurement).
    private static func result(
        of task: Task<SegmentResponse, any Error>,
        within limit: Duration
    ) async -> Result<SegmentResponse, any Error>? {
        // Unstructured on purpose: a transport that ignores cancellation must not hang the check itself.
        await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<SegmentResponse, any Error>?, Never>) in
            let pending = LockedState<CheckedContinuation<Result<SegmentResponse, any Error>?, Never>?>(continuation)
            let timer = Task {
                try? await Task.sleep(for: limit)
                pending.withLock { $0.take() }?.resume(returning: nil)
            }
            Task {
                let result = await task.result
                timer.cancel()
                pending.withLock { $0.take() }?.resume(returning: result)
            }
        }
    }
}
