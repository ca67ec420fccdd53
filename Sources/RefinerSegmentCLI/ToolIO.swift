import Foundation

/// Where the tool reads and writes: the process's files and streams (``standard``), or buffers in tests.
public struct ToolIO: Sendable {
    /// Opens an input: a file by path, or standard input for `nil` or `-`.
    public var openInput: @Sendable (_ path: String?) throws -> any ByteSource
    /// Writes bytes to standard output.
    public var writeOutput: @Sendable (_ bytes: [UInt8]) -> Void
    /// Whether a write to standard output has failed (its reader went away): `send`, whose last resort for
    /// undelivered messages is standard output, then knows they were lost.
    public var outputIsBroken: @Sendable () -> Bool
    /// Writes text to standard error. Once standard error is gone (its reader closed the pipe), the standard
    /// implementation drops what follows: progress is not a reason to stop.
    public var writeError: @Sendable (_ text: String) -> Void
    /// The environment variables.
    public var environment: [String: String]
    /// Whether standard error is a terminal (then progress is a bar redrawn in place, else plain lines).
    public var errorIsTerminal: Bool
    /// Opens the file `send` appends undelivered messages to (see ``FailedFile``). `input` is the file the
    /// input is, when it is one: when it is the failed file itself, the messages go to a fresh file that
    /// replaces it only once the whole input was read.
    public var openFailedFile: @Sendable (_ path: String, _ input: FileIdentity?) throws -> any FailedFile
    /// Starts listening for requests to stop (SIGINT, SIGTERM, SIGHUP) and returns them as a stream of signal
    /// numbers. `send` calls it when it starts and drops the stream when it ends, which stops listening;
    /// commands that do not call it keep the default signal handling. Tests pass a stream they feed.
    public var interruptions: @Sendable () -> AsyncStream<Int32>
    /// A monotonic time, for the progress line's rate and estimate.
    public var now: @Sendable () -> Duration
    /// Ends the process at once with a status: `send` after a second interrupt, once the failed file is
    /// written. Tests record the call instead (the run then goes on to its normal end).
    public var exit: @Sendable (_ status: Int32) -> Void

    /// Creates an I/O set.
    public init(
        openInput: @escaping @Sendable (_ path: String?) throws -> any ByteSource,
        writeOutput: @escaping @Sendable (_ bytes: [UInt8]) -> Void,
        writeError: @escaping @Sendable (_ text: String) -> Void,
        outputIsBroken: @escaping @Sendable () -> Bool = { false },
        environment: [String: String] = [:],
        errorIsTerminal: Bool = false,
        openFailedFile: @escaping @Sendable (_ path: String, _ input: FileIdentity?) throws -> any FailedFile =
            DiskFailedFile.open,
        interruptions: @escaping @Sendable () -> AsyncStream<Int32> = { AsyncStream { _ in } },
        now: @escaping @Sendable () -> Duration = { ContinuousClock.now - ToolIO.origin },
        exit: @escaping @Sendable (_ status: Int32) -> Void = { _ in }
    ) {
        self.openInput = openInput
        self.writeOutput = writeOutput
        self.writeError = writeError
        self.outputIsBroken = outputIsBroken
        self.environment = environment
        self.errorIsTerminal = errorIsTerminal
        self.openFailedFile = openFailedFile
        self.interruptions = interruptions
        self.now = now
        self.exit = exit
    }

    /// The origin of ``now`` by default.
    @usableFromInline static let origin = ContinuousClock.now
}
