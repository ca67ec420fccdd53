import RefinerSegment

/// Failed files kept in memory, by path, for running `send` in-process in tests: pass ``open(_:input:)`` as
/// ``ToolIO/openFailedFile``.
public final class MemoryFailedFiles: Sendable {
    private let files = Locked<[String: [UInt8]]>([:])
    private let refusesWrites: Bool

    /// Creates an empty set of files; with `refusesWrites`, every append fails, as a full disk would.
    public init(refusesWrites: Bool = false) {
        self.refusesWrites = refusesWrites
    }

    /// The files written so far, by path.
    public var contents: [String: [UInt8]] { files.withLock { $0 } }

    /// Opens the file at `path` for appending.
    @Sendable public func open(_ path: String, input: FileIdentity?) throws -> any FailedFile {
        File(path: path, files: self)
    }

    private struct File: FailedFile {
        let path: String
        let files: MemoryFailedFiles

        func append(_ lines: [UInt8]) throws {
            guard !files.refusesWrites else { throw ToolError("cannot write to '\(path)': No space left on device") }
            files.files.withLock { $0[path, default: []] += lines }
        }

        func finish(_ input: InputProgress) throws -> String? { nil }
    }
}
