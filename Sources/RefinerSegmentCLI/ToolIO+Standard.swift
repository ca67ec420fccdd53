import Foundation
import RefinerSegment

extension ToolIO {
    /// The process's standard streams, files, environment and signals.
    ///
    /// Standard output and standard error are written with `write(2)`. A broken standard error (its reader
    /// went away: `2>&1 | head`) ends progress and error lines, never the process; SIGPIPE is ignored while
    /// `send` runs (``SignalListener``), so the write fails with EPIPE instead of killing it.
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
            writeOutput: { bytes in
                if !StandardStream.output.write(bytes) {
                    StandardStream.error.write(Array("refiner-segment: cannot write to standard output\n".utf8))
                }
            },
            writeError: { StandardStream.error.write(Array($0.utf8)) },
            outputIsBroken: { StandardStream.output.isBroken },
            environment: ProcessInfo.processInfo.environment,
            errorIsTerminal: isatty(2) != 0,
            interruptions: { SignalListener.interruptions(for: [SIGINT, SIGTERM, SIGHUP]) },
            exit: { status in Foundation.exit(status) }
        )
    }
}

/// Standard output or standard error, written with `write(2)`; once a write fails (EPIPE: the reader went
/// away), the stream is broken and later writes are dropped.
final class StandardStream: Sendable {
    static let output = StandardStream(descriptor: 1)
    static let error = StandardStream(descriptor: 2)

    private let descriptor: Int32
    private let broken = Locked(false)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Whether a write has failed.
    var isBroken: Bool { broken.withLock { $0 } }

    /// Writes all of `bytes`; false when the stream is (or just became) broken.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        broken.withLock { isBroken in
            guard !isBroken else { return false }
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { writeBytes(descriptor, $0.baseAddress, $0.count) }
                if written < 0, errno == EINTR { continue }
                guard written > 0 else {
                    isBroken = true
                    return false
                }
                offset += written
            }
            return true
        }
    }
}

/// write(2), under a name the stream's `write` does not hide.
private func writeBytes(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
