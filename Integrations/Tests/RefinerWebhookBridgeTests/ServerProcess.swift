import ChildProcessTesting
import Foundation
import NIOCore
import RefinerSegment
import RefinerSegmentAsyncHTTPClient
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One of this package's built servers (`refiner-webhook-bridge`, `refiner-vapor-example`) run as a process
/// on a free loopback port, with only the environment the test gives it and its output in a file.
///
/// A ``ChildProcess``, not a Foundation `Process`, whose `isRunning` can stay true forever once its exit
/// notification is lost: see `Docs/Testing.md`.
final class ServerProcess {
    let child: ChildProcess
    let port: Int
    let log: URL

    /// The built executable, next to the test bundle or in the package's `.build`.
    static func executable(_ name: String) -> URL? {
        var candidates: [URL] = []
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        // Tests/RefinerWebhookBridgeTests/<this file> -> the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Starts `name` with `environment` (and `BRIDGE_HOST`, `BRIDGE_PORT` on a free port), logging to
    /// `log` (appended, so that a restart keeps the first run's lines).
    init(_ name: String, arguments: [String] = [], environment: [String: String], log: URL) throws {
        let url = try #require(Self.executable(name), "build the package first: \(name) is one of its executables")
        port = try Self.freePort()
        self.log = log
        child = try ChildProcess(
            url,
            arguments: arguments,
            environment: environment.merging(
                ["BRIDGE_HOST": "127.0.0.1", "BRIDGE_PORT": String(port), "PATH": "/usr/bin:/bin"]) { $1 },
            standardOutput: .append(log),
            standardError: .append(log))
    }

    deinit {
        child.send(SIGKILL)
    }

    /// What the process wrote so far.
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Waits until `GET /health` answers 200, or the process exits, or a minute passes.
    func waitUntilServing() async throws {
        let request = Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        let port = self.port
        let serving = await eventually(within: .seconds(60)) {
            guard !self.child.hasExited else { return true }
            guard let answer = try? await SlowClient.sendAndWaitForClose(request, port: port) else { return false }
            return String(decoding: answer.received, as: UTF8.self).hasPrefix("HTTP/1.1 200")
        }
        try #require(serving && !child.hasExited, "the server did not start:\n\(output)")
    }

    /// Sends `signal` to the process.
    func send(_ signal: Int32) {
        child.send(signal)
    }

    /// The exit status once the process has exited (the signal's number when one killed it), or `nil` when it
    /// still runs after `bound`.
    func exitStatus(within bound: Duration) async -> Int32? {
        await child.wait(within: bound)?.status
    }

    /// The number of descriptors the process has open (Linux only: `/proc`).
    var openDescriptors: Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.processIdentifier)/fd"))?.count
    }

    /// A port nothing listens on now (the kernel's choice for port 0).
    private static func freePort() throws -> Int {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(bound, "no free port")
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Polls `condition` every 50 ms until it holds or `bound` passes; whether it held. A bound on how long a
/// process may take, never a measurement.
func eventually(within bound: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + bound
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// POSTs the fixture webhook (with its response uuid replaced) to a server on loopback; the status, or
/// `nil` when no answer came (refused, reset).
func postWebhook(
    _ uuid: String,
    port: Int,
    through transport: AsyncHTTPClientTransport,
    path: String = "/webhooks/refiner"
) async throws -> Int? {
    let body = try webhookPayload(responseUUID: uuid)
    let request = SegmentRequest(
        url: URL(string: "http://127.0.0.1:\(port)\(path)")!,
        headerFields: ["X-Refiner-Secret": testSecret, "Content-Type": "application/json"],
        body: Array(body.readableBytesView),
        timeout: .seconds(30))
    return try? await transport.send(request).statusCode
}

/// The environment of a server process that sends to `segment` and keeps its store in `directory`.
func serverEnvironment(
    segment: LoopbackHTTPServer,
    directory: URL,
    _ overrides: [String: String] = [:]
) -> [String: String] {
    [
        "SEGMENT_WRITE_KEY": "wk_bridge_process_key",
        "SEGMENT_ENDPOINT": segment.baseURL.absoluteString,
        "REFINER_WEBHOOK_SECRET": testSecret,
        "BRIDGE_STORE_DIR": directory.appendingPathComponent("store").path,
        "BRIDGE_UNDELIVERED_FILE": directory.appendingPathComponent("undelivered.jsonl").path,
    ].merging(overrides) { $1 }
}

/// A fresh directory for one test, removed by the caller.
func makeTestDirectory(_ name: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}
