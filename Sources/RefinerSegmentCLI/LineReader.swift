import Foundation

/// One line of input: its 1-based number and its bytes (without the line break), or a note that it was
/// too long to keep.
enum InputLine {
    case line(number: Int, bytes: [UInt8])
    case tooLong(number: Int, byteCount: Int)
}

/// Splits a byte source into lines (`\n`, with a `\r` before it dropped), holding at most one line in memory
/// and refusing lines longer than a bound instead of growing without limit.
struct LineReader {
    /// The longest line kept: 64 MiB.
    static let maximumLineBytes = 64 << 20

    private var source: any ByteSource
    private var buffer: [UInt8] = []
    private var position = 0
    private var lineNumber = 0
    private var finished = false
    private let maximumLineBytes: Int
    /// How many bytes of the input have been handed out as lines (line breaks included).
    private(set) var bytesConsumed = 0

    init(source: any ByteSource, maximumLineBytes: Int = LineReader.maximumLineBytes) {
        self.source = source
        self.maximumLineBytes = maximumLineBytes
    }

    /// The size of the whole input, when known.
    var byteCount: Int? { source.byteCount }
    /// The file the input is, when it is one.
    var fileIdentity: FileIdentity? { source.fileIdentity }

    /// Whether ``next()`` can return a line without waiting for input: a whole line is buffered, or the
    /// source is ready (bytes waiting, or its end).
    func canReadWithoutWaiting() -> Bool {
        finished || buffer[position...].contains(UInt8(ascii: "\n")) || source.isReady()
    }

    /// Whether ``next()`` is about to read from a source that has nothing for it yet (a quiet pipe or terminal),
    /// and would wait. Cheap: the source is asked only when every buffered byte was handed out.
    func mayWait() -> Bool {
        !finished && position == buffer.count && !source.isReady()
    }

    mutating func next() throws -> InputLine? {
        var line: [UInt8] = []
        var dropped = 0
        while true {
            if position == buffer.count {
                if finished { break }
                buffer = try source.read()
                position = 0
                if buffer.isEmpty {
                    finished = true
                    break
                }
            }
            let end = Self.firstLineBreak(in: buffer, from: position)
            let chunk = buffer[position..<(end ?? buffer.count)]
            bytesConsumed += chunk.count
            if dropped > 0 || line.count + chunk.count > maximumLineBytes {
                dropped += line.count + chunk.count
                line = []
            } else if line.isEmpty, end != nil {
                // The common case, a whole line in the buffer: one copy, of exactly its bytes.
                line = Array(chunk)
                position = end! + 1
                bytesConsumed += 1
                return finish(line, dropped: 0)
            } else {
                line.append(contentsOf: chunk)
            }
            if let end {
                position = end + 1
                bytesConsumed += 1
                return finish(line, dropped: dropped)
            }
            position = buffer.count
        }
        if line.isEmpty, dropped == 0 { return nil }
        return finish(line, dropped: dropped)
    }

    /// The index of the first `\n` at or after `start`, found by `memchr`.
    private static func firstLineBreak(in buffer: [UInt8], from start: Int) -> Int? {
        buffer.withUnsafeBufferPointer { bytes -> Int? in
            guard let base = bytes.baseAddress, start < bytes.count,
                let found = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start)
            else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
    }

    private mutating func finish(_ line: [UInt8], dropped: Int) -> InputLine {
        lineNumber += 1
        if dropped > 0 { return .tooLong(number: lineNumber, byteCount: dropped) }
        var line = line
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return .line(number: lineNumber, bytes: line)
    }
}
