import Foundation
import RefinerSegment

/// How far `send --store DIR` got through its input: every record that ends on or before ``line`` was
/// accepted into the store (or skipped, or ignored), so a re-run of the same input records only what comes
/// after it.
///
/// It names the input by its content, not its path: ``byteOffset`` (the end of ``line``) and a digest of
/// every byte before it. A re-run whose input starts with exactly those bytes resumes; any other input is
/// read from its start. It lives in the store itself, as the mark of the append of the units it covers
/// (``FileMessageStore/append(_:tenant:marks:)``: one write, one `fsync`), so a crash can never leave those
/// units stored and the cursor before them, nor the cursor past units that were not stored. A copy is
/// written to `DIR/input-cursor.json` after each append for whoever looks while `send` holds the store's
/// lock; nothing reads it back.
struct InputCursor: Codable, Hashable, Sendable {
    /// The cursor file's format.
    var version = 1
    /// The input as the user named it (a path, or `standard input`), for messages only.
    var input: String
    /// The last line covered.
    var line: Int
    /// The byte just past ``line`` (its line break included).
    var byteOffset: Int
    /// FNV-1a (64 bits, hex) of the input's bytes before ``byteOffset``.
    var digest: String

    /// The cursor file in a store's directory.
    static func path(in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent("input-cursor.json").path
    }

    /// The cursor a store's mark holds, if any, or why the mark is not one (an empty mark, or none, is no
    /// cursor: the store was new, or its last job was done).
    ///
    /// A cursor that cannot be read (written by another version) is never guessed at: the input is then read
    /// from its start, which sends some units again and skips none.
    static func decode(mark: [UInt8]?) -> (cursor: InputCursor?, problem: String?) {
        guard let mark, !mark.isEmpty else { return (nil, nil) }
        guard let cursor = try? JSONDecoder().decode(InputCursor.self, from: Data(mark)), cursor.version == 1 else {
            return (nil, "the store's input cursor is not one this version can read (it is replaced by the next one)")
        }
        return (cursor, nil)
    }

    /// The cursor as a store's mark: its JSON, keys sorted.
    var encoded: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A struct of strings and integers always encodes.
        return (try? [UInt8](encoder.encode(self))) ?? []
    }

    /// Writes the copy for reading whole: a temp file renamed over the old one.
    func write(in directory: String) throws {
        let path = Self.path(in: directory)
        let temp = path + ".tmp"
        let bytes = encoded + [UInt8(ascii: "\n")]
        let descriptor = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw Self.error("cannot create '\(temp)'") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else {
                let failure = Self.error("cannot write '\(temp)'")
                close(descriptor)
                throw failure
            }
            offset += written
        }
        close(descriptor)
        // Not synced: it is a copy for reading, never read back (the store's mark is the cursor).
        guard rename(temp, path) == 0 else { throw Self.error("cannot rename '\(temp)' to '\(path)'") }
    }

    /// Removes the copy (the job is done: its input was read to the end and the store is empty).
    static func remove(in directory: String) throws {
        let path = path(in: directory)
        guard unlink(path) == 0 || errno == ENOENT else { throw error("cannot remove '\(path)'") }
        syncDirectory(directory)
    }

    private static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    private static func error(_ what: String) -> ToolError {
        ToolError("\(what): \(String(cString: strerror(errno)))")
    }

    /// `line 5,000 of in.jsonl`.
    var summary: String { "line \(line) of \(input)" }
}

/// FNV-1a, 64 bits: a fast digest that tells one input from another by accident (it is no defence against
/// an input made to collide, which would only fool its own author).
struct InputDigest: Hashable, Sendable {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { add(byte) }
    }

    var hex: String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    /// The digest of the first `count` bytes of an open regular file, read with `pread` (its read position
    /// does not move); `nil` when the file is shorter or cannot be read.
    static func ofFile(descriptor: Int32, count: Int) -> InputDigest? {
        var digest = InputDigest()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset = 0
        while offset < count {
            let wanted = min(chunk.count, count - offset)
            let read = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, wanted, off_t(offset)) }
            if read < 0, errno == EINTR { continue }
            guard read > 0 else { return nil }
            digest.add(chunk[..<read])
            offset += read
        }
        return digest
    }
}
