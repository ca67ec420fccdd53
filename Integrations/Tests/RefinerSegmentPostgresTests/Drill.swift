import Foundation
import NIOConcurrencyHelpers
import RefinerSegment
import RefinerSegmentTesting

/// The built `refiner-segment-postgres-drill`: one instance of a cluster, as a separate process.
final class DrillProcess: Sendable {
    /// The events the process printed, parsed, in order.
    var events: [[String: any Sendable]] { state.withLockedValue { $0.events } }
    /// Its standard error so far.
    var errorText: String { state.withLockedValue { String(decoding: $0.error, as: UTF8.self) } }

    private struct State {
        var pending: [UInt8] = []
        var error: [UInt8] = []
        var events: [[String: any Sendable]] = []
        var exited: CheckedContinuation<Int32, Never>?
        var status: Int32?
    }
    private let state = NIOLockedValueBox(State())
    private let process: Process
    private let output = Pipe()
    private let error = Pipe()
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
        process = Process()
        self.onEvent = onEvent
        name = ([arguments.first ?? "drill"] + arguments.filter { $0.hasPrefix("owner=") || $0.hasPrefix("first=") })
            .joined(separator: " ")
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.consume(handle.availableData)
        }
        error.fileHandleForReading.readabilityHandler = { [state] handle in
            let bytes = [UInt8](handle.availableData)
            state.withLockedValue { $0.error += bytes }
        }
        process.terminationHandler = { [state] process in
            let waiter = state.withLockedValue { state -> CheckedContinuation<Int32, Never>? in
                state.status = process.terminationStatus
                defer { state.exited = nil }
                return state.exited
            }
            waiter?.resume(returning: process.terminationStatus)
        }
        try process.run()
    }

    private func consume(_ data: Data) {
        let parsed: [[String: any Sendable]] = state.withLockedValue { state in
            state.pending += [UInt8](data)
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
    var hasExited: Bool { state.withLockedValue { $0.status != nil } }

    /// Sends SIGKILL: the process dies at once, leases and all. Nothing once it has exited (its pid may be reused).
    func kill() {
        guard state.withLockedValue({ $0.status == nil }) else { return }
        _ = Foundation.kill(process.processIdentifier, SIGKILL)
    }

    /// Waits for the process to exit and returns its status, once its output is read to the end.
    func wait() async -> Int32 {
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let done = state.withLockedValue { state -> Int32? in
                if let status = state.status { return status }
                state.exited = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        output.fileHandleForReading.readabilityHandler = nil
        error.fileHandleForReading.readabilityHandler = nil
        consume(output.fileHandleForReading.readDataToEndOfFile())
        let rest = [UInt8](error.fileHandleForReading.readDataToEndOfFile())
        state.withLockedValue { $0.error += rest }
        return status
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
