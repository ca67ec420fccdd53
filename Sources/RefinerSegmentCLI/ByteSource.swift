import Foundation

/// A stream of bytes read in chunks.
public protocol ByteSource {
    /// The next chunk, or an empty array at the end.
    mutating func read() throws -> [UInt8]
    /// Whether ``read()`` would return at once: bytes are waiting, or the end has come. A file is always
    /// ready; a live pipe or a terminal may not be. `send` never holds a message back while it would have to
    /// wait for more input.
    func isReady() -> Bool
    /// The size of the input when it is known (a regular file), for the progress bar.
    var byteCount: Int? { get }
    /// The file the input is, when it is one, so that `send` can tell when it re-sends its own failed file.
    var fileIdentity: FileIdentity? { get }
}

extension ByteSource {
    /// Always ready, as memory is.
    public func isReady() -> Bool { true }
    /// Unknown.
    public var byteCount: Int? { nil }
    /// Not a file.
    public var fileIdentity: FileIdentity? { nil }
}

/// A file's device and inode: two paths (or a path and an open descriptor) name the same file when these are
/// equal.
public struct FileIdentity: Sendable, Hashable {
    /// The device that holds the file.
    public var device: UInt64
    /// The file's inode number on that device.
    public var inode: UInt64

    /// Creates an identity.
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    init(_ status: stat) {
        self.init(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// The identity of the file an open descriptor refers to.
    static func of(descriptor: Int32) -> (identity: FileIdentity, isRegular: Bool, size: Int)? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        return (FileIdentity(status), (status.st_mode & S_IFMT) == S_IFREG, Int(status.st_size))
    }

    /// The identity of the file at `path` (following a final symbolic link, as `open` would), if it exists.
    static func of(path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return FileIdentity(status)
    }
}

/// Bytes from a file descriptor: a file, a pipe or a terminal.
struct FileHandleSource: ByteSource {
    let handle: FileHandle
    /// Whether to stop waiting for input that does not come (a signal arrived): then the input ends here.
    var stopRequested: @Sendable () -> Bool = { false }
    let byteCount: Int?
    let fileIdentity: FileIdentity?

    init(handle: FileHandle, stopRequested: @escaping @Sendable () -> Bool = { false }) {
        self.handle = handle
        self.stopRequested = stopRequested
        let file = FileIdentity.of(descriptor: handle.fileDescriptor)
        self.fileIdentity = file?.isRegular == true ? file?.identity : nil
        self.byteCount = file?.isRegular == true ? file?.size : nil
    }

    func isReady() -> Bool {
        var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0  // ready, at the end, or an error that read() will report
    }

    mutating func read() throws -> [UInt8] {
        // An idle terminal or pipe would block a plain read for good, and `send` could not react to a signal
        // until more input came; so wait in slices. A file is always ready.
        var descriptor = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, 100)
            if ready > 0 { break }
            if ready < 0, errno != EINTR, errno != EAGAIN { break }  // poll cannot help: read as usual
            if stopRequested() { return [] }
        }
        // One read(2), which returns what is there: FileHandle.read(upToCount:) waits on Linux until the whole
        // count or the end has come, which would sit on the lines a live pipe (`tail -f`) already delivered.
        while true {
            // Read straight into the array handed out: no zero fill, no second copy.
            var count = 0
            let chunk = [UInt8](unsafeUninitializedCapacity: 1 << 16) { buffer, initialized in
                count = readBytes(handle.fileDescriptor, buffer.baseAddress, buffer.count)
                initialized = max(count, 0)
            }
            if count >= 0 { return chunk }
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

    /// The number of bytes served in all.
    public var byteCount: Int? { bytes.count }
}
