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

    /// Connects to 127.0.0.1:`port`, sends `bytes`, and reads until the server closes. Blocking socket calls
    /// run on a thread of their own, never on Swift concurrency's pool.
    static func sendAndWaitForClose(_ bytes: [UInt8], port: Int) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Swift.Result { try run(bytes, port: port) })
            }.start()
        }
    }

    private static func run(_ bytes: [UInt8], port: Int) throws -> Result {
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw ConnectFailed() }
        defer { close(fd) }
        var patience = timeval(tv_sec: 20, tv_usec: 0)
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
        guard connected == 0 else { throw ConnectFailed() }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
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
