import NIOConcurrencyHelpers

/// Wakes every idle sender worker of one instance when a notification arrives (`LISTEN/NOTIFY`).
///
/// A generation counter instead of a flag: a worker reads the generation before it looks for work, and its wait
/// returns at once if a notification came in between, so no wake-up is lost to that race.
final class WakeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }
    private let state = NIOLockedValueBox(State())

    /// The current generation, to pass to ``wait(after:upTo:)``.
    var generation: UInt64 { state.withLockedValue { $0.generation } }

    /// Wakes every waiter.
    func wake() {
        let woken = state.withLockedValue { state in
            state.generation &+= 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns when the generation has moved past `generation`, after `timeout`, or on cancellation.
    func wait(after generation: UInt64, upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForWake(after: generation) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForWake(after generation: UInt64) async {
        let id = state.withLockedValue { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state in
                    if state.generation != generation || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            continuation?.resume()
        }
    }
}
