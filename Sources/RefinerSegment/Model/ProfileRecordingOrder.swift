/// Takes profile records one caller at a time, first come first served: what keeps the messages of one
/// user (and of one account) recorded in the order they were built.
///
/// `withRecords(_:_:)` holds the given records while its body runs (or until the body releases them); a
/// second caller for any of them waits until the first is done with them. Records are taken in a fixed
/// order (``ProfileKey``'s), so two callers that need overlapping records never wait for each other in a
/// cycle. Bounded: it remembers only records that are held or waited for.
public final class ProfileRecordingOrder: Sendable {
    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Record {
        var waiters: [Waiter] = []
    }

    private struct State {
        /// Held records, with the callers waiting for each, in arrival order.
        var held: [ProfileKey: Record] = [:]
        var nextID = 0
    }

    private let state = Locked(State())

    /// Creates an order in which no record is held.
    public init() {}

    /// Runs `body` while holding `keys`, after every earlier caller for any of them is done.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits (nothing of `body` ran), or
    ///   what `body` throws.
    public func withRecords<Result>(
        _ keys: [ProfileKey],
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await withRecords(keys) { (_: Records) in try await body() }
    }

    /// Runs `body` while holding `keys`, after every earlier caller for any of them is done, and lets `body`
    /// give them up before it returns.
    ///
    /// `body` calls ``Records/release()`` once what it does for these records is in its place relative to
    /// every later caller (the pipeline: once the messages are written to the store in order, before the
    /// store makes them durable); the next caller for them starts then instead of when `body` returns.
    /// Records not yet released are released when `body` returns or throws, so a body that never releases
    /// them holds them throughout, as with the overload whose body takes no handle.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while it waits (nothing of `body` ran), or
    ///   what `body` throws.
    public func withRecords<Result>(
        _ keys: [ProfileKey],
        _ body: (Records) async throws -> Result
    ) async throws -> Result {
        let keys = Array(Set(keys)).sorted()
        var taken = 0
        do {
            for key in keys {
                try await take(key)
                taken += 1
            }
        } catch {
            for key in keys[..<taken] { release(key) }
            throw error
        }
        let records = Records(order: self, keys: keys)
        defer { records.release() }
        return try await body(records)
    }

    /// Records a caller of `withRecords(_:_:)` holds, which it may give up before its body returns.
    ///
    /// Thread-safe: ``release()`` may be called from any task, any number of times; only the first call
    /// releases.
    public struct Records: Sendable {
        private let order: ProfileRecordingOrder
        private let keys: [ProfileKey]
        private let isHeld = Locked(true)

        fileprivate init(order: ProfileRecordingOrder, keys: [ProfileKey]) {
            self.order = order
            self.keys = keys
        }

        /// Gives the records up, handing each to the next caller waiting for it; does nothing after the
        /// first call.
        public func release() {
            let wasHeld = isHeld.withLock { held in
                defer { held = false }
                return held
            }
            guard wasHeld else { return }
            for key in keys { order.release(key) }
        }
    }

    /// The number of records held now (for tests and reports).
    public var heldCount: Int { state.withLock { $0.held.count } }

    private func take(_ key: ProfileKey) async throws {
        let id: Int? = state.withLock { state in
            guard state.held[key] != nil else {
                state.held[key] = Record()
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    if state.held[key] == nil {
                        // Released between the first look and now: take it at once.
                        state.held[key] = Record()
                        continuation.resume()
                        return false
                    }
                    state.held[key]!.waiters.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.held[key]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.held[key]!.waiters.remove(at: index)
            }
            // Still waiting: leave without the record. Already handed it: keep it, the caller releases it.
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func release(_ key: ProfileKey) {
        let next = state.withLock { state -> Waiter? in
            guard var record = state.held[key] else { return nil }
            guard !record.waiters.isEmpty else {
                state.held[key] = nil
                return nil
            }
            let next = record.waiters.removeFirst()
            state.held[key] = record
            return next
        }
        // Handed over: the record stays held, now by the next caller.
        next?.continuation.resume()
    }
}
