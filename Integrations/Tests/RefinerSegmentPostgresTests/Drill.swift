import ChildProcessTesting
import Foundation
import NIOConcurrencyHelpers
import RefinerSegment
import RefinerSegmentTesting
import Testing

/// The built `refiner-segment-postgres-drill`: one instance of a cluster, as a separate process.
///
/// Run as a ``ChildProcess``, not a Foundation `Process`: see `Docs/Testing.md` (a wait that relied on
/// `Process.terminationHandler` alone hung the whole test run when that notification never came).
final class DrillProcess: Sendable {
    /// The events the process printed, parsed, in order.
    var events: [[String: any Sendable]] { state.withLockedValue { $0.events } }
    /// Its standard error so far.
    var errorText: String { state.withLockedValue { String(decoding: $0.error, as: UTF8.self) } }

    private struct State {
        var pending: [UInt8] = []
        var error: [UInt8] = []
        var events: [[String: any Sendable]] = []
    }
    private let state = NIOLockedValueBox(State())
    private let child: NIOLockedValueBox<ChildProcess?> = NIOLockedValueBox(nil)
    private let onEvent: @Sendable (_ event: [String: any Sendable], _ process: DrillProcess) -> Void

    /// The executable named by REFINER_SEGMENT_POSTGRES_DRILL (a release build, for the throughput figures), or
    /// the one beside the test bundle (`swift build --build-tests` builds it too).
    static let executable: URL? = {
        if let path = ProcessInfo.processInfo.environment["REFINER_SEGMENT_POSTGRES_DRILL"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent("refiner-segment-postgres-drill") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// The command and the instance's owner, for progress notes.
    let name: String

    /// Starts the drill; `onEvent` sees each event as it is read (and may kill the process).
    init(
        _ arguments: [String],
        onEvent: @escaping @Sendable (_ event: [String: any Sendable], _ process: DrillProcess) -> Void = { _, _ in }
    ) throws {
        guard let executable = Self.executable else {
            throw DrillError(detail: "refiner-segment-postgres-drill is not built: run swift build --build-tests")
        }
        self.onEvent = onEvent
        name = ([arguments.first ?? "drill"] + arguments.filter { $0.hasPrefix("owner=") || $0.hasPrefix("first=") })
            .joined(separator: " ")
        // The readers start with the child and may call onEvent (which may kill it) before init returns: the
        // child is set under the same lock that kill() reads it with.
        let state = self.state
        try child.withLockedValue { child in
            child = try ChildProcess(
                executable,
                arguments: arguments,
                standardOutput: .pipe { [weak self] chunk in self?.consume(chunk) },
                standardError: .pipe { chunk in state.withLockedValue { $0.error += chunk } })
        }
    }

    private func consume(_ data: [UInt8]) {
        let parsed: [[String: any Sendable]] = state.withLockedValue { state in
            state.pending += data
            var lines: [[String: any Sendable]] = []
            while let newline = state.pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(state.pending[..<newline])
                state.pending.removeSubrange(...newline)
                if let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] {
                    lines.append(object.mapValues { DrillProcess.sendable($0) })
                }
            }
            state.events += lines
            return lines
        }
        for event in parsed { onEvent(event, self) }
    }

    /// Whether the process has exited.
    var hasExited: Bool { child.withLockedValue { $0?.hasExited ?? false } }

    /// Sends SIGKILL: the process dies at once, leases and all. Nothing once it has exited (its pid may be reused).
    func kill() {
        // Called from onEvent before init has stored the child, this waits on the lock init holds until then.
        child.withLockedValue { $0 }?.send(SIGKILL)
    }

    /// Waits for the process to exit and returns its status (the signal's number when one killed it), once its
    /// output is read to the end. Past `bound` the process is killed, the test fails saying so, and -1 comes
    /// back: a hung drill fails its test instead of hanging the run.
    func wait(within bound: Duration = .seconds(600)) async -> Int32 {
        guard let child = child.withLockedValue({ $0 }) else { return -1 }
        switch await child.waitOrKill(within: bound) {
        case .success(let termination):
            return termination.status
        case .failure(let timedOut):
            Issue.record("\(timedOut)\nstandard error:\n\(errorText.suffix(2000))")
            return -1
        }
    }

    private static func sendable(_ value: Any) -> any Sendable {
        switch value {
        case let text as String: return text
        case let number as NSNumber: return number.doubleValue
        case let array as [Any]: return array.map { ($0 as? NSNumber)?.int64Value ?? 0 }
        default: return String(describing: value)
        }
    }
}

struct DrillError: Error, CustomStringConvertible {
    var detail: String
    var description: String { detail }
}

/// A Segment stand-in that records when each tenant's requests arrived, on top of the loopback server.
final class SegmentStandIn: Sendable {
    let server: LoopbackHTTPServer
    private let arrivals = NIOLockedValueBox<[(writeKey: String, at: Date, status: Int)]>([])

    /// Starts a server answering through `answer` (given the request's write key and how many requests of that
    /// key came before it).
    init(answer: @escaping @Sendable (_ writeKey: String, _ earlier: Int) -> LoopbackHTTPServer.Answer) throws {
        let arrivals = self.arrivals
        server = try LoopbackHTTPServer { request in
            let key = SegmentStandIn.writeKey(of: request.body)
            let earlier = arrivals.withLockedValue { list in list.filter { $0.writeKey == key }.count }
            let reply = answer(key, earlier)
            var status = 200
            if case .respond(let response) = reply { status = response.statusCode }
            if case .delay(_, let then) = reply, case .respond(let response) = then { status = response.statusCode }
            arrivals.withLockedValue { $0.append((key, Date(), status)) }
            return reply
        }
    }

    /// When the last request arrived, of any write key.
    var lastArrival: Date? { arrivals.withLockedValue { $0.last?.at } }

    /// When each request of a write key arrived and how it was answered, in order.
    func arrivals(of writeKey: String) -> [(at: Date, status: Int)] {
        arrivals.withLockedValue { list in list.filter { $0.writeKey == writeKey }.map { ($0.at, $0.status) } }
    }

    /// The messages of every request answered 2xx in full: (write key, messageId, message object).
    func acceptedMessages() -> [(writeKey: String, messageID: String, message: [String: Any])] {
        var result: [(String, String, [String: Any])] = []
        for request in server.acceptedRequests {
            guard let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any],
                let key = body["writeKey"] as? String, let batch = body["batch"] as? [[String: Any]]
            else { continue }
            for message in batch { result.append((key, message["messageId"] as? String ?? "", message)) }
        }
        return result
    }

    private static func writeKey(of body: [UInt8]) -> String {
        // The key is the last field of the envelope: ..."writeKey":"wk-tenant-07"}
        let text = String(decoding: body.suffix(80), as: UTF8.self)
        guard let range = text.range(of: #""writeKey":""#) else { return "" }
        return String(text[range.upperBound...].prefix { $0 != "\"" })
    }
}
