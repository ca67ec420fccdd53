import Foundation
import RefinerSegment

/// Where `send` keeps the messages it could not deliver, as JSON Lines that `send` reads back.
///
/// Conforming types must append each call's bytes as one piece (whole lines, never interleaved with another
/// writer's, never cut), and must never drop what an earlier run or another process wrote.
public protocol FailedFile: Sendable {
    /// Appends `lines` (whole lines, each ending in a line break), flushed before it returns.
    ///
    /// - Throws: ``ToolError``-like errors naming the file and the cause; then nothing of `lines` is in the file.
    func append(_ lines: [UInt8]) throws
    /// Ends the run; called once reading and delivering are over (a second call does nothing).
    ///
    /// - Parameter input: How far the input was read, and whether to its end.
    /// - Returns: A sentence for the summary, when there is something to say (an in-place re-send swapped
    ///   or kept the file).
    func finish(_ input: InputProgress) throws -> String?
    /// Whether the input is this file (an in-place re-send): then records `send` cannot read are kept in it
    /// too, since the run replaces the file.
    var isInPlace: Bool { get }
}

extension FailedFile {
    /// Not in place.
    public var isInPlace: Bool { false }
}

/// How far `send` read its input.
public struct InputProgress: Sendable, Hashable {
    /// Whether the input was read to its end (no signal, no read error).
    public var isComplete: Bool
    /// The input's bytes read into records.
    public var bytesConsumed: Int

    /// Creates a record of progress.
    public init(isComplete: Bool, bytesConsumed: Int) {
        self.isComplete = isComplete
        self.bytesConsumed = bytesConsumed
    }
}

/// The failed file on disk: appended under an exclusive lock, private to its owner, never followed through a
/// symbolic link.
///
/// - Each ``append(_:)`` takes an `flock` on the file, writes the lines in one go, `fsync`s and unlocks, so
///   runs at once (and an earlier run's lines) share the file without losing a line. A write that fails
///   halfway (a full disk, a size limit) is cut back to the size before it, so the file never ends in half a
///   line.
/// - The file is created on the first append, mode 0600, with `O_NOFOLLOW`. An existing file is refused,
///   with the reason, when it is a symbolic link, not a regular file, owned by another user, or readable or
///   writable by group or others: it holds personal data.
/// - When the input is the failed file itself (`send refiner-segment-failed.jsonl`), nothing is written to
///   it while it is read: the run's undelivered messages go to a fresh private file beside it, which
///   replaces it only when the whole input was read (lines other runs appended meanwhile are carried over
///   under the lock); when the run delivered everything, the file is removed. A run stopped before the end
///   leaves the file as it was, so it still holds every message it held (those delivered in this run are
///   then sent again, and Segment drops them by messageId).
public final class DiskFailedFile: FailedFile {
    /// The failed file's path.
    public let path: String
    private let state: Locked<State>

    private struct State: Sendable {
        /// The descriptor appends go to (the failed file, or the fresh file of an in-place run), once opened.
        var descriptor: Int32?
        /// The fresh file of an in-place run.
        var freshPath: String?
        var finished = false
    }

    /// Whether the input is this file.
    public let isInPlace: Bool

    private init(path: String, isInPlace: Bool) {
        self.path = path
        self.isInPlace = isInPlace
        self.state = Locked(State())
    }

    deinit {
        if let descriptor = state.withLock({ $0.descriptor }) { close(descriptor) }
    }

    /// Checks the failed file at `path` (when it exists) and prepares appending to it.
    ///
    /// - Parameters:
    ///   - path: The failed file.
    ///   - input: The file the input is, when it is one; when it is the failed file, the run is in place.
    /// - Throws: ``ToolError`` when an existing file at `path` is refused (a symbolic link, not a regular
    ///   file, another user's, readable by others).
    @Sendable public static func open(_ path: String, input: FileIdentity?) throws -> any FailedFile {
        var status = stat()
        if lstat(path, &status) == 0 {
            try check(status, path: path)
        }
        let isInPlace = input != nil && FileIdentity.of(path: path) == input
        return DiskFailedFile(path: path, isInPlace: isInPlace)
    }

    /// Refuses a file that must not receive personal data.
    private static func check(_ status: stat, path: String) throws {
        let kind = status.st_mode & S_IFMT
        let refusal = "refusing to write undelivered messages to '\(path)'"
        if kind == S_IFLNK {
            throw ToolError("\(refusal): it is a symbolic link (remove it, or choose another --failed file)")
        }
        guard kind == S_IFREG else { throw ToolError("\(refusal): it is not a regular file") }
        guard status.st_uid == geteuid() else {
            throw ToolError("\(refusal): it belongs to another user (uid \(status.st_uid))")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ToolError(
                "\(refusal): it is readable or writable by others (mode \(String(mode, radix: 8))); it holds "
                    + "personal data: chmod 600 it, or choose another --failed file")
        }
    }

    /// Appends `lines` under the file's lock (to the fresh file, in place), synced before it returns.
    public func append(_ lines: [UInt8]) throws {
        guard !lines.isEmpty else { return }
        try state.withLock { state in
            if isInPlace {
                if state.descriptor == nil {
                    let fresh = Self.freshPath(beside: path)
                    state.descriptor = try Self.openForAppending(fresh, exclusive: true)
                    state.freshPath = fresh
                }
                try Self.write(lines, to: state.descriptor!, path: state.freshPath!)
            } else {
                try appendLocked(lines, state: &state)
            }
        }
    }

    /// Appends to the shared failed file under its lock, reopening it when another run replaced or removed
    /// it while this one waited (an in-place re-send that finished).
    private func appendLocked(_ lines: [UInt8], state: inout State) throws {
        for _ in 0..<5 {
            if state.descriptor == nil { state.descriptor = try Self.openForAppending(path, exclusive: false) }
            let descriptor = state.descriptor!
            try Self.lock(descriptor, path: path)
            defer { flock(descriptor, LOCK_UN) }
            guard let current = FileIdentity.of(descriptor: descriptor)?.identity,
                current == FileIdentity.of(path: path)
            else {
                close(descriptor)
                state.descriptor = nil
                continue
            }
            try Self.write(lines, to: descriptor, path: path)
            return
        }
        throw ToolError("cannot append to '\(path)': it keeps being replaced by another process")
    }

    /// Closes the file; in place, swaps in the fresh file (or removes the failed file) when the input was
    /// read to its end, and otherwise leaves the failed file as it was.
    public func finish(_ input: InputProgress) throws -> String? {
        try state.withLock { state -> String? in
            guard !state.finished else { return nil }
            state.finished = true
            if let descriptor = state.descriptor { close(descriptor) }
            state.descriptor = nil
            guard isInPlace else { return nil }
            let fresh = state.freshPath
            guard input.isComplete else {
                if let fresh { unlink(fresh) }
                return "\(path) was left as it was (the run stopped before its end): it still holds every "
                    + "message it held; those delivered now are dropped by Segment when it is sent again"
            }
            return try swap(fresh, consumed: input.bytesConsumed)
        }
    }

    /// Replaces the failed file by the fresh one (or removes it when nothing is left), under its lock, with
    /// the lines other runs appended after what this run read.
    private func swap(_ fresh: String?, consumed: Int) throws -> String? {
        let original = Foundation.open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard original >= 0 else {
            if let fresh, rename(fresh, path) != 0 { throw Self.error("cannot rename '\(fresh)' to '\(path)'") }
            return nil
        }
        defer { close(original) }
        try Self.lock(original, path: path)
        defer { flock(original, LOCK_UN) }
        var freshPath = fresh
        let size = Int(lseek(original, 0, SEEK_END))
        if size > consumed {
            // Lines another run appended while this one read: they belong in the new file.
            var rest = [UInt8](repeating: 0, count: size - consumed)
            let count = rest.withUnsafeMutableBytes { pread(original, $0.baseAddress, $0.count, off_t(consumed)) }
            guard count == rest.count else { throw Self.error("cannot read the end of '\(path)'") }
            if freshPath == nil {
                let path = Self.freshPath(beside: self.path)
                close(try Self.openForAppending(path, exclusive: true))
                freshPath = path
            }
            let descriptor = try Self.openForAppending(freshPath!, exclusive: false)
            defer { close(descriptor) }
            try Self.write(rest, to: descriptor, path: freshPath!)
        }
        guard let freshPath else {
            guard unlink(path) == 0 else { throw Self.error("cannot remove '\(path)'") }
            return "\(path) was delivered in full and removed"
        }
        guard rename(freshPath, path) == 0 else { throw Self.error("cannot rename '\(freshPath)' to '\(path)'") }
        return "\(path) now holds only what is still undelivered"
    }

    /// A private file name in the failed file's directory, so that a rename replaces it atomically.
    private static func freshPath(beside path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Opens `path` for appending, creating it 0600, never through a symbolic link; checks what it opened.
    private static func openForAppending(_ path: String, exclusive: Bool) throws -> Int32 {
        let flags = O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : 0)
        let descriptor = Foundation.open(path, flags, mode_t(0o600))
        guard descriptor >= 0 else {
            if errno == ELOOP {
                throw ToolError("refusing to write undelivered messages to '\(path)': it is a symbolic link")
            }
            throw error("cannot open '\(path)' for appending")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw error("cannot inspect '\(path)'")
        }
        do {
            try check(status, path: path)
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Takes the file's exclusive lock, waiting at most 10 s for another run to release it.
    private static func lock(_ descriptor: Int32, path: String) throws {
        for _ in 0..<1000 {
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return }
            guard errno == EWOULDBLOCK || errno == EINTR else { throw error("cannot lock '\(path)'") }
            usleep(10_000)
        }
        throw ToolError("cannot lock '\(path)': another process has held its lock for 10 s")
    }

    /// Writes all of `bytes` and syncs them; on failure cuts the file back to its size before, so no line is
    /// left half written.
    private static func write(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        let before = lseek(descriptor, 0, SEEK_END)
        var lines = bytes
        if before > 0 {
            // A file whose last line lacks its line break (written by hand): the next line must not join it.
            var last: UInt8 = 0
            if pread(descriptor, &last, 1, before - 1) == 1, last != UInt8(ascii: "\n") {
                lines.insert(UInt8(ascii: "\n"), at: 0)
            }
        }
        var offset = 0
        while offset < lines.count {
            let written = lines[offset...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else {
                let failure = error("cannot write to '\(path)'")
                if before >= 0 { _ = ftruncate(descriptor, before) }
                throw failure
            }
            offset += written
        }
        guard fsync(descriptor) == 0 else {
            let failure = error("cannot sync '\(path)'")
            if before >= 0 { _ = ftruncate(descriptor, before) }
            throw failure
        }
    }

    private static func error(_ what: String) -> ToolError {
        ToolError("\(what): \(String(cString: strerror(errno)))")
    }
}
