/// A file-backed profile store could not open its file, read it, or write it.
///
/// Names the file and what went wrong (with the system's error number where there is one); it never
/// quotes profile contents.
public struct FileProfileStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure: an open set.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// Another process (or another store in this one) has the file open.
        public static let locked = Code("locked")
        /// A system call failed (no space, no permission, an I/O error).
        public static let io = Code("io")
        /// The file is not a profile store, or its contents make no sense.
        public static let corrupt = Code("corrupt")
        /// The store was closed.
        public static let closed = Code("closed")
        /// The index does not describe the log (a value out of range, a bad checksum, a slot that points at no
        /// entry of its key). Never thrown to a caller: the store rebuilds the index from the log and goes on.
        static let damagedIndex = Code("damaged index")

        /// The code's name.
        public var description: String { name }
    }

    /// The kind of failure.
    public let code: Code
    /// The file concerned.
    public let path: String
    /// What went wrong, in words.
    public let detail: String
    /// The system's error number, when a system call failed.
    public let errorNumber: Int32?

    init(_ code: Code, path: String, _ detail: String, errorNumber: Int32? = nil) {
        self.code = code
        self.path = path
        self.detail = detail
        self.errorNumber = errorNumber
    }

    /// `profile store <path>: <detail>`.
    public var description: String {
        "profile store \(path): \(detail)" + (errorNumber.map { " (errno \($0))" } ?? "")
    }
}
