import RefinerSegment
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// INTERIM, until the core's `SegmentPipeline.run()` and `triggerGracefulShutdown()` land (the durable
// delivery work): the same contract on today's API, inside a service group only. Cancellation while
// draining is not honoured here; the core's `run()` honours it. Delete this file when they land.
extension SegmentPipeline {
    func run() async throws {
        // Returns at graceful shutdown; throws when the task is cancelled.
        try? await gracefulShutdown()
        let deadline = Task.isCancelled ? Date.now : Date.now.addingTimeInterval(24 * 3600)
        await shutdown(deadline: deadline)
    }

    nonisolated func triggerGracefulShutdown() {}
}
