import Foundation
import RefinerSegment

extension SendSession {
    /// Handles stop signals by ``StopPolicy``: the first asks for the graceful stop, one close behind it is
    /// the same stop, a later one writes every undelivered message out and exits, one more exits at once.
    func watch(_ interruptions: AsyncStream<Int32>) async {
        for await number in interruptions {
            let now = io.now()
            let (action, first) = stop.withLock { state -> (StopPolicy.Action, Int32?) in
                let action = state.policy.receive(number, at: now)
                if action == .stop { state.signal = number }
                return (action, state.signal)
            }
            let name = SignalListener.name(of: number)
            switch action {
            case .stop:
                io.writeError(
                    "refiner-segment: \(name) received: stopping; undelivered messages go to "
                        + "\(options.failedPath)\n")
                // The pipeline stops accepting (a reader waiting for room is woken), delivers for the grace
                // period, then stops.
                pipeline.triggerGracefulShutdown()
            case .ignore:
                io.writeError("refiner-segment: \(name) received again at once: the same stop\n")
            case .hurry:
                hurry(by: name, status: 128 + (first ?? number))
            case .abandon:
                io.writeError(
                    "refiner-segment: \(name) received a third time: exiting at once; undelivered messages "
                        + "not yet written are lost\n")
                io.exit(RefinerSegmentTool.abandoned)
            }
        }
    }

    /// A second interrupt: the grace is over. Everything read and not yet delivered goes to the failed file
    /// now (what the pipeline still delivers meanwhile is then in the file too: Segment drops it by
    /// messageId when the file is sent again), then the process exits.
    private func hurry(by name: String, status: Int32) {
        // With a store, what is read and accepted is in the store already, and the rest after the cursor (or,
        // from a pipe, in the failed file).
        undelivered.save(ledger.takeAll().forFailedFile(storeMode))
        let note = undelivered.finish(InputProgress(isComplete: false, bytesConsumed: 0))
        var text = "refiner-segment: \(name) received again: stopping at once"
        text += "; " + (undelivered.summary ?? "no undelivered messages")
        if let storeMode { text += "; what was accepted stays in \(storeMode.directory) for the next run" }
        if let note { text += "; " + note }
        io.writeError(text + "\n")
        io.exit(undelivered.lost > 0 ? RefinerSegmentTool.abandoned : status)
    }
}
