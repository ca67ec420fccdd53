import RefinerSegment

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The JSON Lines file where messages that Refiner was answered 200 for, but that were not delivered, are
/// appended, for `refiner-segment send` to send again.
///
/// They hold personal data (emails, answers), so the file is created readable by its owner only (0600),
/// never through a symbolic link (`O_NOFOLLOW`), and an existing file that others can read or that
/// another user owns is refused rather than appended to.
public struct UndeliveredFile: Sendable {
    /// The file's path.
    public var path: String

    /// Names the file; nothing is opened until messages are appended.
    public init(path: String) {
        self.path = path
    }

    /// Why the messages could not be saved, naming the file.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, with the path.
        public var description: String
    }

    /// Appends the messages, one JSON object per line, exactly as they were built.
    public func append(_ messages: [SegmentMessage]) throws(Failure) {
        guard !messages.isEmpty else { return }
        var lines: [UInt8] = []
        for message in messages {
            lines.append(contentsOf: message.json)
            lines.append(UInt8(ascii: "\n"))
        }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            throw Failure(
                description: code == ELOOP
                    ? "\(path) is a symbolic link; refusing to write personal data through it"
                    : "cannot open \(path): \(String(cString: strerror(code)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw Failure(description: "cannot inspect \(path)") }
        guard status.st_uid == geteuid() else {
            throw Failure(description: "\(path) belongs to another user; refusing to append personal data to it")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw Failure(description: "\(path) can be read by others (chmod 600 it); refusing to append to it")
        }
        var written = 0
        while written < lines.count {
            let result = lines[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += result
        }
        guard fsync(descriptor) == 0 else { throw Failure(description: "cannot sync \(path)") }
    }
}
