import Testing

@testable import RefinerSegment

@Suite struct WaitQueueTests {
    /// Waiters signalled and cancelled in every order, again and again: once every wait has returned, the
    /// queue keeps no id of theirs (a cancellation that came after the signal used to leave one behind).
    @Test func cancelledAndSignalledWaitsLeaveNothingBehind() async {
        let queue = WaitQueue()
        for round in 0..<300 {
            await withTaskGroup(of: WaitQueue.Wake.self) { group in
                for _ in 0..<4 { group.addTask { await queue.wait() } }
                if round % 3 == 0 { await Task.yield() }
                queue.signalAll()
                group.cancelAll()
                queue.signalAll()
                for await _ in group {}
            }
        }
        // A wait that never queued because its task was cancelled before it began.
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.wait()
        }
        #expect(await task.value == .cancelled)
        #expect(queue.count == 0)
        #expect(queue.bookkeeping == 0)
    }
}
