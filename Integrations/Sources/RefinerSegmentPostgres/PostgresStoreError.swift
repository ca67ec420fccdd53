import PostgresNIO

/// An error of the PostgreSQL stores: what was wrong, where, and the server's error when there is one.
///
/// The description names the operation and the table; it never carries message bodies or write keys (the
/// stores hold neither keys nor credentials, and bodies stay out so that a log line stays small and clean).
public struct PostgresStoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a closed set that may grow (switch with a `default`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Value: Sendable, Hashable {
            case schemaTooNew
            case invalidInput
            case storedDataUnreadable
            case serverFailed
        }
        private let value: Value

        /// The database was migrated by a newer version of this library than the running one.
        public static let schemaTooNew = Code(value: .schemaTooNew)
        /// The caller passed something the store cannot hold (an empty tenant, a unit too large).
        public static let invalidInput = Code(value: .invalidInput)
        /// A stored row could not be read back (edited by hand, or written by a newer version).
        public static let storedDataUnreadable = Code(value: .storedDataUnreadable)
        /// The server or the connection failed; ``PostgresStoreError/underlying`` holds the error.
        public static let serverFailed = Code(value: .serverFailed)

        /// The code's name.
        public var description: String {
            switch value {
            case .schemaTooNew: "schemaTooNew"
            case .invalidInput: "invalidInput"
            case .storedDataUnreadable: "storedDataUnreadable"
            case .serverFailed: "serverFailed"
            }
        }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable account naming the operation and what was wrong.
    public let detail: String
    /// The error from postgres-nio or the connection, when there is one.
    public let underlying: (any Error)?

    init(_ code: Code, _ detail: String, underlying: (any Error)? = nil) {
        self.code = code
        self.detail = detail
        self.underlying = underlying
    }

    /// The detail, and the server's own message when there is one.
    ///
    /// Only the server's message and SQLSTATE are quoted: postgres-nio's own debug description carries the
    /// query's bound values, which are message bodies.
    public var description: String {
        guard let underlying else { return detail }
        return "\(detail): \(Self.summary(of: underlying))"
    }

    /// A one-line account of a postgres-nio error without the query's bound values.
    static func summary(of error: any Error) -> String {
        if let error = error as? PSQLError {
            let message = error.serverInfo?[.message] ?? "\(error.code)"
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.beginError, error.commitError, error.rollbackError] {
                if let inner { return summary(of: inner) }
            }
        }
        return String(describing: error)
    }

    /// Wraps whatever a query threw, naming the operation; store errors pass through.
    static func wrapping(_ error: any Error, _ operation: String) -> any Error {
        if error is PostgresStoreError || error is CancellationError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError,
            inner is PostgresStoreError || inner is CancellationError
        {
            return inner
        }
        return PostgresStoreError(.serverFailed, operation, underlying: error)
    }
}
