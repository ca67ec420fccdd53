import Foundation

/// A value behind a lock, shared by the test doubles.
///
/// `Synchronization.Mutex` would do, but it needs macOS 15 and the package supports macOS 13; `NSLock` is
/// everywhere. Every access to `value` goes through `withLock`, which is why the type can be `Sendable`.
final class LockedState<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
