import Foundation

/// Where the tool reads and writes: the process's files and streams, or buffers in tests.
public struct ToolIO: Sendable {
    /// Opens an input: a file by path, or standard input for `nil` or `-`.
    public var openInput: @Sendable (_ path: String?) throws -> any ByteSource
    /// Writes bytes to standard output.
    public var writeOutput: @Sendable (_ bytes: [UInt8]) -> Void
    /// Writes text to standard error.
    public var writeError: @Sendable (_ text: String) -> Void
    /// The environment variables.
    public var environment: [String: String]
    /// Whether standard error is a terminal (then progress is a bar redrawn in place, else plain lines).
    public var errorIsTerminal: Bool
    /// Writes a whole file, replacing it (`send`'s failed messages).
    public var writeFile: @Sendable (_ path: String, _ bytes: [UInt8]) throws -> Void
    /// Starts listening for requests to stop (SIGINT, SIGTERM) and returns them as a stream of signal
    /// numbers. `send` calls it when it starts and drops the stream when it ends, which stops listening;
    /// commands that do not call it keep the default signal handling. Tests pass a stream they feed.
    public var interruptions: @Sendable () -> AsyncStream<Int32>

    /// Creates an I/O set.
    public init(
        openInput: @escaping @Sendable (_ path: String?) throws -> any ByteSource,
        writeOutput: @escaping @Sendable (_ bytes: [UInt8]) -> Void,
        writeError: @escaping @Sendable (_ text: String) -> Void,
        environment: [String: String] = [:],
        errorIsTerminal: Bool = false,
        writeFile: @escaping @Sendable (_ path: String, _ bytes: [UInt8]) throws -> Void = ToolIO.writeFileToDisk,
        interruptions: @escaping @Sendable () -> AsyncStream<Int32> = { AsyncStream { _ in } }
    ) {
        self.openInput = openInput
        self.writeOutput = writeOutput
        self.writeError = writeError
        self.environment = environment
        self.errorIsTerminal = errorIsTerminal
        self.writeFile = writeFile
        self.interruptions = interruptions
    }

    /// Writes `bytes` to the file at `path`, replacing it.
    @Sendable public static func writeFileToDisk(_ path: String, _ bytes: [UInt8]) throws {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        } catch {
            throw ToolError("cannot write '\(path)': \(error.localizedDescription)")
        }
    }

    /// The process's standard streams, files and environment.
    public static var standard: ToolIO {
        ToolIO(
            openInput: { path in
                guard let path, path != "-" else {
                    return FileHandleSource(handle: .standardInput, stopRequested: { SignalListener.received })
                }
                guard let handle = FileHandle(forReadingAtPath: path) else {
                    throw ToolError("cannot open '\(path)' for reading")
                }
                return FileHandleSource(handle: handle, stopRequested: { SignalListener.received })
            },
            writeOutput: { FileHandle.standardOutput.write(Data($0)) },
            writeError: { FileHandle.standardError.write(Data($0.utf8)) },
            environment: ProcessInfo.processInfo.environment,
            errorIsTerminal: isatty(2) != 0,
            interruptions: { SignalListener.interruptions(for: [SIGINT, SIGTERM]) }
        )
    }
}

/// The process's SIGINT and SIGTERM as a stream, for `send`'s orderly stop.
///
/// While the stream is listened to, the signals' default action (terminate at once) is off and a dispatch
/// source reports them instead; a second signal while the first is being handled terminates the process
/// at once, as an operator who presses Ctrl-C twice expects (what was not yet written to the failed file
/// is then lost, as with `kill -9`). Dropping the stream restores the default action.
enum SignalListener {
    /// Whether one of the signals listened for has arrived in this process.
    static var received: Bool { flag.isSet }

    private static let flag = Flag()

    static func interruptions(for signals: [Int32]) -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let sources = Sources()
            for number in signals {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    flag.set()
                    if sources.countSignal() > 1 { exit(128 + number) }
                    continuation.yield(number)
                }
                source.resume()
                sources.add(source)
            }
            continuation.onTermination = { _ in
                sources.cancelAll()
                for number in signals { signal(number, SIG_DFL) }
            }
        }
    }

    /// A flag behind a lock (set by a signal handler, read by the input reader), which is why the type may be
    /// `@unchecked Sendable`.
    private final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false

        var isSet: Bool {
            lock.lock()
            defer { lock.unlock() }
            return value
        }

        func set() {
            lock.lock()
            defer { lock.unlock() }
            value = true
        }
    }

    /// The dispatch sources and the signals seen so far. An `NSLock` guards both, which is why the type may
    /// be `@unchecked Sendable`: the signal handlers and the stream's termination reach it from any thread.
    private final class Sources: @unchecked Sendable {
        private let lock = NSLock()
        private var sources: [any DispatchSourceSignal] = []
        private var seen = 0

        func add(_ source: any DispatchSourceSignal) {
            lock.lock()
            defer { lock.unlock() }
            sources.append(source)
        }

        /// Counts one more signal and returns how many were seen.
        func countSignal() -> Int {
            lock.lock()
            defer { lock.unlock() }
            seen += 1
            return seen
        }

        func cancelAll() {
            lock.lock()
            let all = sources
            sources = []
            lock.unlock()
            for source in all { source.cancel() }
        }
    }
}

/// A stream of bytes read in chunks.
public protocol ByteSource {
    /// The next chunk, or an empty array at the end.
    mutating func read() throws -> [UInt8]
}

/// Bytes from a file handle.
struct FileHandleSource: ByteSource {
    let handle: FileHandle
    /// Whether to stop waiting for input that does not come (a signal arrived): then the input ends here.
    var stopRequested: @Sendable () -> Bool = { false }

    mutating func read() throws -> [UInt8] {
        // An idle terminal or pipe would block a plain read for good, and `send` could not react to SIGINT or
        // SIGTERM until more input came; so wait in slices. A file is always ready.
        var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, 100)
            if ready > 0 { break }
            if ready < 0, errno != EINTR, errno != EAGAIN { break }  // poll cannot help: read as usual
            if stopRequested() { return [] }
        }
        // One read(2), which returns what is there: FileHandle.read(upToCount:) waits on Linux until the whole
        // count or the end has come, which would sit on the lines a live pipe (`tail -f`) already delivered.
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { readBytes(handle.fileDescriptor, $0.baseAddress, $0.count) }
            if count >= 0 { return Array(chunk[..<count]) }
            guard errno == EINTR else { throw ToolError("cannot read the input: \(String(cString: strerror(errno)))") }
            if stopRequested() { return [] }
        }
    }
}

/// read(2), under a name the `read()` of a byte source does not hide.
private func readBytes(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// Bytes from memory, for tests.
public struct MemorySource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0
    private let chunkSize: Int

    /// Serves `bytes` in chunks of `chunkSize` (small chunks test line splitting across reads).
    public init(_ bytes: [UInt8], chunkSize: Int = 1 << 16) {
        self.bytes = bytes
        self.chunkSize = max(1, chunkSize)
    }

    /// The next chunk, or an empty array at the end.
    public mutating func read() throws -> [UInt8] {
        let end = min(offset + chunkSize, bytes.count)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

/// An error the tool reports on standard error.
struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

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

    init(source: any ByteSource, maximumLineBytes: Int = LineReader.maximumLineBytes) {
        self.source = source
        self.maximumLineBytes = maximumLineBytes
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
            let end = buffer[position...].firstIndex(of: UInt8(ascii: "\n"))
            let chunk = buffer[position..<(end ?? buffer.count)]
            if dropped > 0 || line.count + chunk.count > maximumLineBytes {
                dropped += line.count + chunk.count
                line = []
            } else {
                line.append(contentsOf: chunk)
            }
            if let end {
                position = end + 1
                return finish(line, dropped: dropped)
            }
            position = buffer.count
        }
        if line.isEmpty, dropped == 0 { return nil }
        return finish(line, dropped: dropped)
    }

    private mutating func finish(_ line: [UInt8], dropped: Int) -> InputLine {
        lineNumber += 1
        if dropped > 0 { return .tooLong(number: lineNumber, byteCount: dropped) }
        var line = line
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return .line(number: lineNumber, bytes: line)
    }
}

/// Collects standard output and writes it in large pieces.
struct OutputBuffer {
    private var bytes: [UInt8] = []
    private let write: @Sendable ([UInt8]) -> Void

    init(write: @escaping @Sendable ([UInt8]) -> Void) {
        self.write = write
        bytes.reserveCapacity(1 << 16)
    }

    mutating func appendLine(_ line: some Sequence<UInt8>) {
        bytes.append(contentsOf: line)
        bytes.append(UInt8(ascii: "\n"))
        if bytes.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        write(bytes)
        bytes.removeAll(keepingCapacity: true)
    }
}

/// UTF-8 validation that also builds for macOS 13 (`String(validating:as:)` needs macOS 15).
enum UTF8Validation {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
