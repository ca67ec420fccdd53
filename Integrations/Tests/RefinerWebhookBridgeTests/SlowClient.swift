import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A client that sends part of a request and then goes silent, as a slowloris attack does; it reports
/// whether the server closed the connection before the client's own patience (20 s) ran out.
enum SlowClient {
    struct Result: Sendable {
        /// The server closed (or reset) the connection; `false` when the client gave up first.
        var closedByServer: Bool
        /// What the server sent before closing.
        var received: [UInt8]
    }

    struct ConnectFailed: Error {}

    /// A write to a connection the server closed fails instead of raising SIGPIPE.
    #if canImport(Darwin)
    static let noSignal: Int32 = 0  // Darwin has SO_NOSIGPIPE instead; the test process ignores nothing else
    #else
    static let noSignal = Int32(MSG_NOSIGNAL)
    #endif

    /// Connects to 127.0.0.1:`port`, sends `bytes`, and reads until the server closes. Blocking socket calls
    /// run on a thread of their own, never on Swift concurrency's pool.
    static func sendAndWaitForClose(_ bytes: [UInt8], port: Int) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Swift.Result { try run(bytes, port: port) })
            }.start()
        }
    }

    /// Sends `bytes` one at a time, `interval` apart, as long as the connection stays open, and reports
    /// whether the server closed it (a trickled request head: each byte resets a timer that counts bytes).
    static func trickleAndWaitForClose(_ bytes: [UInt8], interval: Duration, port: Int) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Swift.Result {
                        let fd = try connected(port: port, patience: 20)
                        defer { close(fd) }
                        for byte in bytes {
                            var byte = byte
                            guard send(fd, &byte, 1, noSignal) == 1 else {
                                return Result(closedByServer: true, received: [])
                            }
                            Thread.sleep(
                                forTimeInterval: Double(interval.components.seconds)
                                    + Double(interval.components.attoseconds) / 1e18)
                        }
                        return receiveUntilClose(fd)
                    })
            }.start()
        }
    }

    /// A connected TCP socket to 127.0.0.1:`port` whose reads give up after `patience` seconds.
    static func connected(port: Int, patience seconds: Int) throws -> Int32 {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw ConnectFailed() }
        var patience = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw ConnectFailed()
        }
        return fd
    }

    private static func run(_ bytes: [UInt8], port: Int) throws -> Result {
        let fd = try connected(port: port, patience: 20)
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, noSignal) }
        return receiveUntilClose(fd)
    }

    /// Reads until the server closes the connection, or the socket's patience runs out.
    static func receiveUntilClose(_ fd: Int32) -> Result {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[..<count]
            } else if count == 0 || errno == ECONNRESET {
                return Result(closedByServer: true, received: received)
            } else if errno == EINTR {
                continue
            } else {
                return Result(closedByServer: false, received: received)  // our patience ran out
            }
        }
    }
}
