import Foundation
import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 server on 127.0.0.1, for tests of real transports without the internet, that can
/// also misbehave on purpose.
///
/// It listens on a port the system picks (``port``), serves each connection on a thread of its own
/// (keep-alive, `Content-Length` and chunked bodies), records every request and answers through a handler.
/// The handler may answer any status with any headers, answer slowly (``Answer/delay(_:then:)``), stall
/// past the client's timeout (``Answer/hold`` or a long delay), reset the connection without an answer
/// (``Answer/reset``) or close it (``Answer/close``), drop it halfway through the answer
/// (``Answer/truncate(_:)``, ``Answer/truncateHead(_:)``), go silent after the head
/// (``Answer/headThenSilence(_:)``) or close it after a whole answer (``Answer/respondThenClose(_:reset:)``),
/// so a transport and
/// the pipeline above it can be tested against the faults of a real network. ``acceptedRequests`` keeps
/// the requests that were answered 2xx in full: what a collector would have accepted;
/// ``incompleteRequests`` the malformed ones, whose body was shorter than announced. A client that opens a
/// TLS handshake is answered with a plain-HTTP 400, so its handshake fails at once.
///
/// Blocking socket calls run on its own threads, never on Swift concurrency's pool. Its threads keep it
/// running until ``stop()``: call it when the test is done (`defer { server.stop() }`).
public final class LoopbackHTTPServer: Sendable {
    /// A request as the server read it.
    public struct Request: Sendable, Hashable {
        /// The method, such as `POST`.
        public var method: String
        /// The request target, such as `/v1/batch`.
        public var path: String
        /// The header fields, by name as received; look them up with ``headerField(_:)``.
        public var headerFields: [String: String]
        /// The body bytes (de-chunked).
        public var body: [UInt8]

        /// The value of a header field, its name compared without regard to case.
        public func headerField(_ name: String) -> String? {
            let lowered = name.lowercased()
            return headerFields.first { $0.key.lowercased() == lowered }?.value
        }
    }

    /// What the server does with a request.
    public indirect enum Answer: Sendable {
        /// Send this response, whatever its status and headers.
        case respond(SegmentResponse)
        /// Send nothing and hold the connection until the client gives up (for timeout and cancellation
        /// tests).
        case hold
        /// Wait, then act: a slow answer, or a stall past the client's timeout when the wait is longer.
        case delay(Duration, then: Answer)
        /// Close the connection at once with a TCP reset and no answer, as a crashed server or a proxy
        /// that drops the connection mid-request does.
        case reset
        /// Close the connection at once (a FIN) with no answer, as a server that drops an idle keep-alive
        /// connection just as a request arrives on it does.
        case close
        /// Send this response's head and the first half of its body, then close the connection: an answer
        /// cut short.
        case truncate(SegmentResponse)
        /// Send the first half of this response's head, then close the connection. (FoundationNetworking on
        /// Linux traps on this in toolchains without the fix for swift-corelibs-foundation#5285.)
        case truncateHead(SegmentResponse)
        /// Send this response's whole head, then nothing more (not its body) until the client gives up: a
        /// server that stalls after it started answering. A transport's timeout must cover this too.
        case headThenSilence(SegmentResponse)
        /// Send this response in full, then close the connection, with a FIN, or with a TCP reset when
        /// `reset` is true: a server or proxy that drops an idle keep-alive connection. The client's next
        /// request finds the connection gone.
        case respondThenClose(SegmentResponse, reset: Bool)

        /// Answer with this status, headers and body text.
        public static func status(
            _ statusCode: Int,
            headerFields: [String: String] = [:],
            body: String = ""
        ) -> Answer {
            .respond(SegmentResponse(statusCode: statusCode, headerFields: headerFields, body: Array(body.utf8)))
        }
    }

    /// The port the server listens on, on 127.0.0.1.
    public let port: Int
    private let listener: Int32
    private let handler: @Sendable (Request) -> Answer
    private let state = LockedState(ServerState())

    private struct ServerState {
        var requests: [Request] = []
        var incomplete: [Request] = []
        var accepted: [(ticket: Int, request: Request)] = []
        var nextTicket = 0
        var connections: Set<Int32> = []
        var stopped = false
        /// The accepting thread closed the listener: its number may belong to someone else now.
        var listenerClosed = false
        var requestWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// `http://127.0.0.1:<port>`.
    public var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// Every request received so far, in order.
    public var requests: [Request] { state.withLock { $0.requests } }

    /// Every request whose head arrived but whose body ended before its `Content-Length` (or its last chunk)
    /// when the client closed the connection: a malformed request, never handed to the handler. The body holds
    /// what did arrive.
    public var incompleteRequests: [Request] { state.withLock { $0.incomplete } }

    /// Every request answered with a 2xx status whose answer was written in full, in the order answered:
    /// the batches a collector accepted.
    public var acceptedRequests: [Request] { state.withLock { $0.accepted.map(\.request) } }

    /// Starts a server that answers every request through `handler` (200 and `{}` by default).
    ///
    /// - Throws: `POSIXError` when the socket cannot be opened or bound.
    public init(
        handler: @escaping @Sendable (Request) -> Answer = { _ in
            .respond(SegmentResponse(statusCode: 200, body: Array("{}".utf8)))
        }
    ) throws {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = fd
        self.handler = handler
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit {
        stop()
    }

    /// Stops listening and closes every open connection. Idempotent.
    public func stop() {
        // Descriptors are only shut down here, never closed: the thread that owns one closes it, under the
        // same lock for connections, so a descriptor number reused by a server another test just started is
        // never touched by this one.
        // The listener too, under the lock, unless the accepting thread already closed it (an accept that
        // failed for good): its number may then belong to another server.
        state.withLock { state in
            guard !state.stopped else { return }
            state.stopped = true
            for connection in state.connections { shutdown(connection, Int32(SHUT_RDWR)) }
            guard !state.listenerClosed else { return }
            shutdown(listener, Int32(SHUT_RDWR))
            #if canImport(Darwin)
            // Darwin does not wake a thread blocked in accept() on shutdown(); closing it does.
            close(listener)
            state.listenerClosed = true
            #endif
        }
    }

    /// Suspends until the server has received at least `count` requests.
    public func waitForRequests(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.requests.count >= count { return true }
                state.requestWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                let code = errno
                if code == EINTR || code == ECONNABORTED { continue }
                let stopped = state.withLock { $0.stopped }
                if !stopped, code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    usleep(10_000)  // out of descriptors or memory for now: try again
                    continue
                }
                // stop() shut it down, or it failed for good: its owner, this thread, closes it, and notes it
                // under the lock so that stop() never touches the number again.
                state.withLock { state in
                    guard !state.listenerClosed else { return }
                    close(listener)
                    state.listenerClosed = true
                }
                return
            }
            #if canImport(Darwin)
            var yes: Int32 = 1
            setsockopt(connection, SOL_SOCKET, SO_NOSIGPIPE, &yes, socklen_t(MemoryLayout<Int32>.size))
            #endif
            let accepted = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.connections.insert(connection)
                return true
            }
            guard accepted else {
                close(connection)
                return
            }
            let thread = Thread { [self] in serve(connection) }
            thread.start()
        }
    }

    private func serve(_ connection: Int32) {
        var reader = ConnectionReader(fd: connection)
        defer {
            state.withLock { state in
                state.connections.remove(connection)
                close(connection)
            }
        }
        if reader.startsWithTLSHandshake() {
            // A client speaking TLS to this plain-HTTP server: answer as HTTP servers do, so that its handshake
            // fails at once (a test of how a transport reports TLS failures), instead of both sides waiting.
            _ = write(
                Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8), to: connection
            )
            return
        }
        while true {
            let request: Request
            switch reader.readRequest() {
            case .none:
                return
            case .incomplete(let partial):
                state.withLock { $0.incomplete.append(partial) }
                return
            case .complete(let complete):
                request = complete
            }
            let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.requests.append(request)
                let count = state.requests.count
                let ready = state.requestWaiters.filter { $0.count <= count }.map(\.continuation)
                state.requestWaiters.removeAll { $0.count <= count }
                return ready
            }
            for waiter in ready { waiter.resume() }
            guard answer(request, with: handler(request), on: connection, reader: &reader) else { return }
            if request.headerField("Connection")?.lowercased() == "close" { return }
        }
    }

    /// Carries out an answer; false when the connection is done with.
    private func answer(
        _ request: Request,
        with answer: Answer,
        on connection: Int32,
        reader: inout ConnectionReader
    ) -> Bool {
        switch answer {
        case .hold:
            reader.drainUntilClosed()
            return false
        case .delay(let duration, let next):
            // In short slices, so that stop() is not held up by a long stall.
            var remaining = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
            while remaining > 0, !state.withLock({ $0.stopped }) {
                Thread.sleep(forTimeInterval: min(remaining, 0.01))
                remaining -= 0.01
            }
            return self.answer(request, with: next, on: connection, reader: &reader)
        case .reset:
            // SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            var option = linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            return false
        case .close:
            return false
        case .truncate(let response):
            let bytes = Self.bytes(of: response)
            _ = write(Array(bytes.prefix(bytes.count - response.body.count + response.body.count / 2)), to: connection)
            return false
        case .truncateHead(let response):
            let bytes = Self.bytes(of: response)
            _ = write(Array(bytes.prefix((bytes.count - response.body.count) / 2)), to: connection)
            return false
        case .headThenSilence(let response):
            let bytes = Self.bytes(of: response)
            guard write(Array(bytes.prefix(bytes.count - response.body.count)), to: connection) else { return false }
            reader.drainUntilClosed()
            return false
        case .respondThenClose(let response, let reset):
            guard self.answer(request, with: .respond(response), on: connection, reader: &reader) else { return false }
            if reset {
                var option = linger(l_onoff: 1, l_linger: 0)
                setsockopt(connection, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            }
            return false
        case .respond(let response):
            // Recorded before the write, so that a client that has read the answer always finds its batch
            // here; withdrawn when the write fails.
            let isAccepted = (200..<300).contains(response.statusCode)
            let ticket =
                isAccepted
                ? state.withLock { state -> Int in
                    state.nextTicket += 1
                    state.accepted.append((state.nextTicket, request))
                    return state.nextTicket
                } : 0
            guard write(Self.bytes(of: response), to: connection) else {
                if isAccepted { state.withLock { $0.accepted.removeAll { $0.ticket == ticket } } }
                return false
            }
            return true
        }
    }

    private static func bytes(of response: SegmentResponse) -> [UInt8] {
        var head = "HTTP/1.1 \(response.statusCode) \(response.statusCode < 400 ? "OK" : "Error")\r\n"
        head += "Content-Length: \(response.body.count)\r\n"
        for (name, value) in response.headerFields where name.lowercased() != "content-length" {
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        var bytes = Array(head.utf8)
        bytes.append(contentsOf: response.body)
        return bytes
    }

    private func write(_ bytes: [UInt8], to connection: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { buffer -> Int in
                #if canImport(Darwin)
                return send(connection, buffer.baseAddress, buffer.count, 0)
                #else
                return send(connection, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
                #endif
            }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}

/// Reads HTTP/1.1 requests from a blocking socket.
private struct ConnectionReader {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
    }

    /// Reads more bytes; false at the end of the stream or on an error.
    private mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[..<count])
            return true
        }
    }

    /// Whether the first byte the client sent opens a TLS handshake record (0x16), not an HTTP request.
    mutating func startsWithTLSHandshake() -> Bool {
        if buffer.isEmpty, !fill() { return false }
        return buffer.first == 0x16
    }

    mutating func drainUntilClosed() {
        while fill() { buffer.removeAll() }
    }

    private mutating func readLine() -> String? {
        while true {
            if let end = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<end])
                buffer.removeSubrange(...end)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard fill() else { return nil }
        }
    }

    private mutating func readBytes(_ count: Int) -> [UInt8]? {
        while buffer.count < count {
            guard fill() else { return nil }
        }
        let bytes = Array(buffer[..<count])
        buffer.removeSubrange(..<count)
        return bytes
    }

    /// What reading a request gave.
    enum Reading {
        /// The connection closed before a request began, or its request line is not HTTP.
        case none
        /// The head arrived, the body was cut short by the end of the connection.
        case incomplete(LoopbackHTTPServer.Request)
        /// A whole request.
        case complete(LoopbackHTTPServer.Request)
    }

    mutating func readRequest() -> Reading {
        var requestLine = ""
        repeat {
            guard let line = readLine() else { return .none }
            requestLine = line
        } while requestLine.isEmpty
        let parts = requestLine.split(separator: " ")
        guard parts.count >= 2 else { return .none }
        var headerFields: [String: String] = [:]
        while let line = readLine(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headerFields[name] = String(value)
        }
        var request = LoopbackHTTPServer.Request(
            method: String(parts[0]), path: String(parts[1]), headerFields: headerFields, body: [])
        if request.headerField("Transfer-Encoding")?.lowercased().contains("chunked") == true {
            while true {
                guard let sizeLine = readLine(),
                    let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16)
                else { return .incomplete(request) }
                if size == 0 {
                    while let trailer = readLine(), !trailer.isEmpty {}
                    break
                }
                guard let chunk = readBytes(size), readLine() != nil else {
                    request.body.append(contentsOf: buffer.prefix(size))
                    return .incomplete(request)
                }
                request.body.append(contentsOf: chunk)
            }
        } else if let length = request.headerField("Content-Length").flatMap({ Int($0) }), length > 0 {
            guard let body = readBytes(length) else {
                request.body = buffer
                return .incomplete(request)
            }
            request.body = body
        }
        return .complete(request)
    }
}
