import Foundation
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

/// The built `refiner-webhook-bridge` and `refiner-vapor-example` as an operator runs them: real signals,
/// a real store directory, a loopback Segment stand-in that stalls or answers.
@Suite(.serialized) struct BridgeProcessTests {
    /// The identify messageIds the fixture's webhooks turn into (its account has no remote_id: no group).
    private func messageIDs(_ uuids: some Sequence<String>) -> Set<String> {
        Set(uuids.map { "refiner-\($0)-identify" })
    }

    @Test(arguments: ["refiner-webhook-bridge", "refiner-vapor-example"])
    func everyWebhookAnswered200SurvivesSIGKILLAndIsDeliveredAfterARestart(server name: String) async throws {
        let directory = try makeTestDirectory("bridge-kill")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("server.log")

        // Segment holds every request: nothing is ever delivered before the kill.
        let stalled = try LoopbackHTTPServer { _ in .hold }
        defer { stalled.stop() }
        let first = try ServerProcess(
            name, environment: serverEnvironment(segment: stalled, directory: directory), log: log)
        try await first.waitUntilServing()
        let uuids = (0..<12).map { "\(name)-kill-\($0)" }
        var answers: [String: Int?] = [:]
        try await AsyncHTTPClientTransport.withTransport { transport in
            for uuid in uuids { answers[uuid] = try await postWebhook(uuid, port: first.port, through: transport) }
        }
        #expect(answers.values.allSatisfy { $0 == 200 }, "\(answers)")
        first.send(SIGKILL)
        #expect(await first.exitStatus(within: .seconds(30)) != nil)
        #expect(try acceptedMessageIDs(stalled).isEmpty)

        // Segment is back; the next start on the same directory sends what the first one answered 200 for.
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let second = try ServerProcess(
            name, environment: serverEnvironment(segment: segment, directory: directory), log: log)
        try await second.waitUntilServing()
        let answered = messageIDs(uuids.filter { answers[$0] == 200 })
        let delivered = try await eventually(within: .seconds(60)) {
            Set(try acceptedMessageIDs(segment)).isSuperset(of: answered)
        }
        let arrived = try acceptedMessageIDs(segment)
        #expect(delivered, "delivered \(arrived.count) of \(answered.count)\n\(second.output)")
        second.send(SIGTERM)
        #expect(await second.exitStatus(within: .seconds(30)) == 0, "\(second.output)")
    }

    @Test func aFullStoreIsAnswered503WithinTheBoundAndKeepsWhatItAnswered200() async throws {
        let directory = try makeTestDirectory("bridge-full")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("server.log")
        let stalled = try LoopbackHTTPServer { _ in .hold }
        defer { stalled.stop() }
        // A store of 4 KiB holds a handful of webhooks; a webhook waits half a second for room.
        let environment = serverEnvironment(
            segment: stalled, directory: directory,
            ["BRIDGE_STORE_MAX_BYTES": "4096", "BRIDGE_ACCEPT_SECONDS": "0.5"])
        let bridge = try ServerProcess("refiner-webhook-bridge", environment: environment, log: log)
        try await bridge.waitUntilServing()

        var answers: [(uuid: String, status: Int?, took: Duration)] = []
        try await AsyncHTTPClientTransport.withTransport { transport in
            for index in 0..<16 {
                let uuid = "full-\(index)"
                let start = ContinuousClock.now
                let status = try await postWebhook(uuid, port: bridge.port, through: transport)
                answers.append((uuid, status, ContinuousClock.now - start))
            }
        }
        // Every webhook was answered (the client waits 30 s): 200 while there was room, then 503.
        #expect(answers.allSatisfy { $0.status == 200 || $0.status == 503 }, "\(answers)")
        #expect(answers.first?.status == 200)
        #expect(answers.last?.status == 503)
        // A 503 comes after the half-second bound, well before the client's patience: never a hang.
        #expect(answers.filter { $0.status == 503 }.allSatisfy { $0.took < .seconds(10) }, "\(answers)")
        bridge.send(SIGKILL)
        _ = await bridge.exitStatus(within: .seconds(30))

        // Exactly the webhooks answered 200 were kept: none answered 503 was half-accepted.
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let restarted = try ServerProcess(
            "refiner-webhook-bridge", environment: serverEnvironment(segment: segment, directory: directory), log: log)
        try await restarted.waitUntilServing()
        let answered = messageIDs(answers.filter { $0.status == 200 }.map(\.uuid))
        let delivered = try await eventually(within: .seconds(60)) { Set(try acceptedMessageIDs(segment)) == answered }
        let arrived = try acceptedMessageIDs(segment)
        #expect(delivered, "\(arrived) != \(answered)")
        restarted.send(SIGTERM)
        #expect(await restarted.exitStatus(within: .seconds(30)) == 0, "\(restarted.output)")
    }

    @Test func sigtermMidTrafficStopsWithinTheBoundAndLeavesTheRestInTheStore() async throws {
        let directory = try makeTestDirectory("bridge-term")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("server.log")
        let stalled = try LoopbackHTTPServer { _ in .hold }
        defer { stalled.stop() }
        let bridge = try ServerProcess(
            "refiner-webhook-bridge",
            environment: serverEnvironment(segment: stalled, directory: directory, ["BRIDGE_SHUTDOWN_SECONDS": "2"]),
            log: log)
        try await bridge.waitUntilServing()

        // Four clients post one webhook after another; SIGTERM comes once ten are answered 200.
        let answers = Answers()
        let port = bridge.port
        let stopped = try await AsyncHTTPClientTransport.withTransport { transport in
            try await withThrowingTaskGroup(of: Void.self, returning: (status: Int32?, took: Duration).self) { group in
                for client in 0..<4 {
                    group.addTask {
                        for index in 0..<15 {
                            let uuid = "term-\(client)-\(index)"
                            let status = try await postWebhook(uuid, port: port, through: transport)
                            await answers.append(uuid, status)
                            if status == nil { return }  // the server is gone
                        }
                    }
                }
                _ = await eventually(within: .seconds(60)) { await answers.accepted >= 10 }
                let start = ContinuousClock.now
                bridge.send(SIGTERM)
                let status = await bridge.exitStatus(within: .seconds(30))
                let took = ContinuousClock.now - start
                try await group.waitForAll()
                return (status, took)
            }
        }
        // It stopped on its own, within BRIDGE_SHUTDOWN_SECONDS (2 s) and some slack for a loaded machine,
        // though Segment never answered the batch it held.
        #expect(stopped.status == 0, "\(bridge.output)")
        #expect(stopped.took < .seconds(15))
        let all = await answers.all
        #expect(all.allSatisfy { [200, 503, nil].contains($0.status) }, "\(all)")

        // The next start delivers every webhook answered 200, and none answered 503.
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let restarted = try ServerProcess(
            "refiner-webhook-bridge", environment: serverEnvironment(segment: segment, directory: directory), log: log)
        try await restarted.waitUntilServing()
        let answered = messageIDs(all.filter { $0.status == 200 }.map(\.uuid))
        let refused = messageIDs(all.filter { $0.status == 503 }.map(\.uuid))
        let delivered = try await eventually(within: .seconds(60)) {
            Set(try acceptedMessageIDs(segment)).isSuperset(of: answered)
        }
        let arrived = Set(try acceptedMessageIDs(segment))
        #expect(delivered, "delivered \(arrived.count) of \(answered.count)")
        #expect(arrived.isDisjoint(with: refused))
        restarted.send(SIGTERM)
        #expect(await restarted.exitStatus(within: .seconds(30)) == 0, "\(restarted.output)")
    }

    @Test func connectionsPastTheCapWaitAndARealRequestGetsThroughOnceTheFloodEnds() async throws {
        let directory = try makeTestDirectory("bridge-cap")
        defer { try? FileManager.default.removeItem(at: directory) }
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        // Four connections at most; an idle one is kept a minute, so only the cap can turn the flood away.
        let environment = serverEnvironment(
            segment: segment, directory: directory,
            ["BRIDGE_MAX_CONNECTIONS": "4", "BRIDGE_IDLE_TIMEOUT_SECONDS": "60"])
        let bridge = try ServerProcess(
            "refiner-webhook-bridge", environment: environment, log: directory.appendingPathComponent("server.log"))
        try await bridge.waitUntilServing()
        let baseline = bridge.openDescriptors

        // 60 connections, each with half a request head, held open.
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        let head = Array("POST /webhooks/refiner HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8)
        for _ in 0..<60 {
            let fd = try SlowClient.connected(port: bridge.port, patience: 30)
            _ = head.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, SlowClient.noSignal) }
            flood.append(fd)
        }
        #if os(Linux)
        // The server takes the first connections and leaves the rest in the kernel's backlog: its
        // descriptors grow by the cap (and what one accept loop takes before it looks), not by 60.
        let base = try #require(baseline)
        _ = await eventually(within: .seconds(10)) { (bridge.openDescriptors ?? 0) > base }
        try? await Task.sleep(for: .milliseconds(500))  // time for an uncapped server to take them all
        let open = try #require(bridge.openDescriptors)
        #expect(open > base)
        #expect(open <= base + 4 + 16, "\(open - base) connections taken past a cap of 4")
        #endif

        // A real request waits behind the flood, and is answered once the flood goes.
        let port = bridge.port
        async let answer = SlowClient.sendAndWaitForClose(
            Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8), port: port)
        for fd in flood { close(fd) }
        flood = []
        let health = try await answer
        #expect(String(decoding: health.received, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        bridge.send(SIGTERM)
        #expect(await bridge.exitStatus(within: .seconds(30)) == 0, "\(bridge.output)")
    }

    /// Answers as clients get them.
    private actor Answers {
        var all: [(uuid: String, status: Int?)] = []
        var accepted: Int { all.filter { $0.status == 200 }.count }
        func append(_ uuid: String, _ status: Int?) { all.append((uuid, status)) }
    }

    @Test(arguments: ["refiner-webhook-bridge", "refiner-vapor-example"])
    func trickledRequestHeadsAndStalledBodiesAreClosed(server name: String) async throws {
        let directory = try makeTestDirectory("bridge-idle")
        defer { try? FileManager.default.removeItem(at: directory) }
        let segment = try LoopbackHTTPServer()
        defer { segment.stop() }
        let server = try ServerProcess(
            name,
            environment: serverEnvironment(
                segment: segment, directory: directory, ["BRIDGE_IDLE_TIMEOUT_SECONDS": "1"]),
            log: directory.appendingPathComponent("server.log"))
        try await server.waitUntilServing()
        let port = server.port

        // Slowloris: request heads that never end, sent at once and then silent, and (Hummingbird) heads that
        // trickle in a byte at a time. The client's own patience is 20 s; the server's is 1 s. Vapor's idle
        // timeout counts bytes, so a trickled head keeps a Vapor connection open: Docs/Security.md says so,
        // and the reverse proxy in front bounds header time.
        let trickles = name == "refiner-webhook-bridge"
        let trickle = Array(String(repeating: "X-Padding: 1\r\n", count: 100).utf8)
        let results = try await withThrowingTaskGroup(of: SlowClient.Result.self) { group in
            for _ in 0..<10 {
                if trickles {
                    group.addTask {
                        try await SlowClient.trickleAndWaitForClose(
                            Array("POST /webhooks/refiner HTTP/1.1\r\n".utf8) + trickle, interval: .milliseconds(100),
                            port: port)
                    }
                }
                group.addTask {
                    try await SlowClient.sendAndWaitForClose(
                        Array("POST /webhooks/refiner HTTP/1.1\r\n".utf8), port: port)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == (trickles ? 20 : 10))
        #expect(results.allSatisfy { $0.closedByServer })
        #expect(results.allSatisfy { !String(decoding: $0.received, as: UTF8.self).hasPrefix("HTTP/1.1 200") })

        // A body that stops halfway: answered 408 or cut off, never 200, never held.
        let stalledBody = try await SlowClient.sendAndWaitForClose(
            Array(
                "POST /webhooks/refiner HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Refiner-Secret: \(testSecret)\r\nContent-Length: 100\r\n\r\n{"
                    .utf8), port: port)
        #expect(stalledBody.closedByServer)
        #expect(!String(decoding: stalledBody.received, as: UTF8.self).hasPrefix("HTTP/1.1 200"))

        // A real webhook still gets through.
        let status = try await AsyncHTTPClientTransport.withTransport { transport in
            try await postWebhook("\(name)-after-slowloris", port: port, through: transport)
        }
        #expect(status == 200)
        server.send(SIGTERM)
        #expect(await server.exitStatus(within: .seconds(30)) == 0, "\(server.output)")
        #expect(Set(try acceptedMessageIDs(segment)) == ["refiner-\(name)-after-slowloris-identify"])
    }
}
