#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A value guarded by a mutex: the package's one lock type, for the few caches the pure API keeps behind the
/// scenes and for state the other modules (the URLSession transport, the command-line tool, the test doubles)
/// share across threads.
///
/// `Synchronization.Mutex` would do, but it needs macOS 15 and iOS 18, and the library supports macOS 13
/// and iOS 16. pthread mutexes exist on every platform the library builds for. Like `NIOLockedValueBox`, it
/// is `Sendable` only when its value is.
package final class Locked<Value> {
    // Unchecked: the mutex makes every access exclusive, so the run-time exclusivity check (two calls and
    // a thread-local lookup per `withLock`) would only cost.
    @exclusivity(unchecked) private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// Puts `value` behind the lock.
    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

// @unchecked: `value` is only read or written inside `withLock`, which holds `mutex`.
extension Locked: @unchecked Sendable where Value: Sendable {}
