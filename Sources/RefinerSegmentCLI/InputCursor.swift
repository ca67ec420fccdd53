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
    /// Records after ``line`` that were accepted too, out of input order: `send --tenants --store` stores a
    /// window of interleaved tenants one tenant at a time, so a tenant stored first has units past a line of
    /// another tenant not stored yet. `nil` when there are none (and in cursors of earlier versions, which
    /// only knew ``line``: the field is optional, so each version reads the other's cursors, an older one
    /// covering less).
    var beyond: Beyond?

    /// Accepted records past the cursor's ``InputCursor/line``, for an input whose bytes before
    /// ``byteOffset`` are the ones digested.
    struct Beyond: Codable, Hashable, Sendable {
        /// The lines records end on, as ranges of lines (a unit of consecutive records is one range); every
        /// record whose last line is in one of them was accepted. Sorted, not overlapping, all after the
        /// cursor's line.
        var lines: [ClosedRange<Int>]
        /// Just past the last of those lines.
        var byteOffset: Int
        /// FNV-1a (64 bits, hex) of the input's bytes before ``byteOffset``.
        var digest: String
    }

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

    /// The cursor as a store's mark: its JSON, keys sorted, as `JSONEncoder` would read it back.
    ///
    /// Written by hand: `send --store` makes a mark for every unit it records (the store keeps the one of
    /// the last unit it accepts), and a cursor with ``beyond`` holds up to a window's ranges.
    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + input.utf8.count + (beyond?.lines.count ?? 0) * 16)
        out += #"{"#.utf8
        if let beyond {
            out += #""beyond":{"byteOffset":"#.utf8
            Self.append(beyond.byteOffset, to: &out)
            out += #","digest":"#.utf8
            Self.append(string: beyond.digest, to: &out)
            out += #","lines":["#.utf8
            for (index, range) in beyond.lines.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                Self.append(range.lowerBound, to: &out)
                out.append(UInt8(ascii: ","))
                Self.append(range.upperBound, to: &out)
                out.append(UInt8(ascii: "]"))
            }
            out += #"]},"#.utf8
        }
        out += #""byteOffset":"#.utf8
        Self.append(byteOffset, to: &out)
        out += #","digest":"#.utf8
        Self.append(string: digest, to: &out)
        out += #","input":"#.utf8
        Self.append(string: input, to: &out)
        out += #","line":"#.utf8
        Self.append(line, to: &out)
        out += #","version":"#.utf8
        Self.append(version, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func append(_ value: Int, to out: inout [UInt8]) {
        out += String(value).utf8
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A JSON string: quotes, backslashes and control characters escaped, the rest as UTF-8.
    private static func append(string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                out += #"\u00"#.utf8
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
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

    /// `line 5,000 of in.jsonl`, or `line 2 of in.jsonl and 18 lines after it`.
    var summary: String {
        guard let beyond, !beyond.lines.isEmpty else { return "line \(line) of \(input)" }
        let count = beyond.lines.reduce(0) { $0 + $1.count }
        return "line \(line) of \(input) and \(count) \(count == 1 ? "line" : "lines") after it"
    }

    /// Whether the record whose last line is `line` is covered: on or before ``line``, or in ``beyond``.
    func covers(_ line: Int) -> Bool {
        if line <= self.line { return true }
        guard let ranges = beyond?.lines else { return false }
        // Sorted ranges: a binary search for the first that does not end before `line`.
        var (low, high) = (0, ranges.count)
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < line { low = middle + 1 } else { high = middle }
        }
        return low < ranges.count && ranges[low].contains(line)
    }
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
