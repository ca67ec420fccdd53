import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a child process writes to a pipe, read with a bound on bytes and one on time, for this package's
/// tests of built executables: a child gone wrong (printing forever, or neither printing nor exiting)
/// then fails its test instead of eating memory or hanging it.
package enum BoundedPipeRead {
    /// Why reading stopped.
    package enum End: Sendable, Equatable, CustomStringConvertible {
        /// `enough` was true of what had been read.
        case enough
        /// Every writer closed the pipe (the child exited, or closed its end).
        case endOfFile
        /// More than the cap came: the bytes read are the first `cap`.
        case overCap(Int)
        /// The time bound passed first.
        case outOfTime(Duration)
        /// `poll` or `read` failed with this `errno`.
        case failed(Int32)

        package var description: String {
            switch self {
            case .enough: "enough read"
            case .endOfFile: "end of file"
            case .overCap(let cap): "more than \(cap) bytes (the cap)"
            case .outOfTime(let bound): "nothing more within \(bound) (the bound)"
            case .failed(let code): "read failed (errno \(code))"
            }
        }
    }

    /// Reads `handle` until `enough` is true of what came, the pipe ends, more than `cap` bytes came or
    /// `bound` passed, on a thread of its own (a cooperative thread is not blocked meanwhile).
    ///
    /// - Returns: What was read (at most `cap` bytes) and why reading stopped.
    package static func read(
        _ handle: FileHandle,
        cap: Int,
        within bound: Duration,
        until enough: @escaping @Sendable ([UInt8]) -> Bool = { _ in false }
    ) async -> (bytes: [UInt8], end: End) {
        let descriptor = handle.fileDescriptor
        return await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: readNow(descriptor, cap: cap, within: bound, until: enough))
            }.start()
        }
    }

    /// ``read(_:cap:within:until:)`` on the calling thread.
    static func readNow(
        _ descriptor: Int32,
        cap: Int,
        within bound: Duration,
        until enough: ([UInt8]) -> Bool
    ) -> (bytes: [UInt8], end: End) {
        let deadline = ContinuousClock.now + bound
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            if enough(bytes) { return (bytes, .enough) }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return (bytes, .outOfTime(bound)) }
            // At most a second per poll, and at least one millisecond, so the deadline is seen.
            let milliseconds = min(
                1000, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&request, 1, Int32(milliseconds))
            if ready < 0 {
                if errno == EINTR { continue }
                return (bytes, .failed(errno))
            }
            if ready == 0 { continue }
            // One byte past the cap, to tell "exactly the cap" from "more".
            let wanted = min(buffer.count, cap - bytes.count + 1)
            let count = buffer.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return (bytes, .failed(errno))
            }
            if count == 0 { return (bytes, .endOfFile) }
            bytes += buffer[..<count]
            if bytes.count > cap { return (Array(bytes.prefix(cap)), .overCap(cap)) }
        }
    }
}

/// `read(2)`, by a name that the type's own `read` does not hide.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}
