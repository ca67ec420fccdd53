import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a store's directory (`flock` on its `LOCK` file, which holds the holder's pid), so
/// two processes never share one store. The kernel releases it when the process dies, even by SIGKILL.
final class DirectoryLock: Sendable {
    let descriptor: Int32

    /// Takes the lock, or throws naming the process that holds it.
    init(directory: URL) throws {
        let path = directory.appendingPathComponent("LOCK").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw FileStoreError.io("open", path: path, errno: errno) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var bytes = [UInt8](repeating: 0, count: 32)
            let count = pread(descriptor, &bytes, bytes.count, 0)
            close(descriptor)
            let holder = String(decoding: bytes.prefix(max(0, count)), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw FileStoreError.locked(path: directory.path, holder: holder.isEmpty ? "unknown" : holder)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, pid, pid.count, 0)
        self.descriptor = descriptor
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// Why the file store could not do what was asked: the directory is another process's, or a file
/// operation failed (with the path and the system's reason).
public struct FileStoreError: Error, Sendable, CustomStringConvertible {
    /// The reason in words, naming the path.
    public let description: String

    private init(_ description: String) { self.description = description }

    static func locked(path: String, holder: String) -> FileStoreError {
        FileStoreError("the message store \(path) is in use by process \(holder)")
    }

    static func io(_ operation: String, path: String, errno code: Int32) -> FileStoreError {
        FileStoreError("\(operation) \(path) failed: \(String(cString: strerror(code)))")
    }

    static func damaged(_ detail: String) -> FileStoreError { FileStoreError(detail) }
}
