#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SegmentPipeline {
    /// How long a claim is this pipeline's in a store shared with other processes.
    static let claimLease = Duration.seconds(300)

    /// The batches in flight, one worker each, until the pipeline drains or is cancelled.
    func runWorkers() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<configuration.maximumBatchesInFlight {
                group.addTask { await self.runWorker() }
            }
        }
    }

    private func runWorker() async {
        while let claim = await nextClaim() {
            let start = claimedThrough
            claimedThrough += claim.messages.count
            inFlightStarts.append(start)
            counters.inFlightMessages += claim.messages.count
            counters.queuedMessages = max(0, counters.queuedMessages - claim.messages.count)
            counters.queuedBytes = max(0, counters.queuedBytes - MessageQueue.bytes(of: claim.messages))
            roomMayBeFree()
            let finished = await deliver(claim)
            if !finished {
                await storeCall("the store could not take back \(claim.messages.count) messages in flight") {
                    try await store.release(claim)
                }
            }
            counters.inFlightMessages -= claim.messages.count
            if let index = inFlightStarts.firstIndex(of: start) { inFlightStarts.remove(at: index) }
            roomMayBeFree()
            resumeFlushWaiters()
            if !finished { return }
        }
    }

    /// The next batch, once the pause is over and the linger says so; `nil` when the worker stops (drained,
    /// or cancelled).
    private func nextClaim() async -> SegmentClaim? {
        while !Task.isCancelled {
            guard await waitOutPause() else { return nil }
            let usage: SegmentStoreUsage
            if let memoryStore {
                usage = memoryStore.usageNow(tenant: tenant)
            } else {
                do {
                    usage = try await store.usage(tenant: tenant)
                } catch {
                    // Reported, not taken as an empty store: the messages are still there.
                    reportStoreFailure("the store could not say what it holds", error)
                    guard await waitAfterStoreFailure() else { return nil }
                    continue
                }
            }
            let generation = work.generation
            let decision = BatchCut.decide(
                claimableMessages: usage.claimableMessages, claimableBytes: usage.claimableBytes,
                maximumMessages: configuration.batch.maximumMessages,
                maximumBytes: configuration.batch.maximumBytes - envelopeBytes, oldestSince: oldestUnclaimed,
                linger: configuration.linger, urgent: lifecycle != .running || !flushWaiters.isEmpty,
                now: clock.now())
            switch decision {
            case .idle:
                if lifecycle != .running && lifecycle != .idle { return nil }
                idleWorkers += 1
                let wake = await work.wait(since: generation)
                idleWorkers -= 1
                if wake == .cancelled { return nil }
            case .wait(let until):
                lingeringWorkers += 1
                await waitForWork(since: generation, until: until)
                lingeringWorkers -= 1
            case .cut:
                let claim: SegmentClaim?
                do {
                    claim = try await store.claim(
                        tenant: tenant, maximumMessages: configuration.batch.maximumMessages,
                        maximumBytes: configuration.batch.maximumBytes - envelopeBytes, lease: Self.claimLease)
                } catch {
                    reportStoreFailure("the store could not hand out a batch", error)
                    guard await waitAfterStoreFailure() else { return nil }
                    continue
                }
                guard let claim else { continue }
                if !claim.unreadable.isEmpty { skipUnreadable(claim.unreadable) }
                if claim.messages.isEmpty { continue }
                appendedSinceClaim = (0, 0)
                oldestUnclaimed = usage.claimableMessages > claim.messages.count ? clock.now() : nil
                return claim
            }
        }
        return nil
    }

    /// Reports units a claim could not read back, each as a failed outcome with code `storeFailure` (kept in
    /// the store) or `storeDamaged` (dropped), counted in ``Counters/storeFailures``, and counts their messages
    /// as done, so `flush()` and a drain do not wait for them.
    private func skipUnreadable(_ unreadable: [SegmentClaim.Unreadable]) {
        var count = 0
        for units in unreadable {
            count += units.messageCount
            counters.storeFailures += 1
            emit(
                .failed(
                    [],
                    reason: SegmentDeliveryError(
                        code: units.isKept ? .storeFailure : .storeDamaged,
                        underlyingDescription: units.underlying.map { redact("\($0)") },
                        underlying: units.underlying, detail: units.detail)))
        }
        claimedThrough += count
        counters.queuedMessages = max(0, counters.queuedMessages - count)
        roomMayBeFree()
        resumeFlushWaiters()
    }

    /// A store call before sending failed: counted (``Counters/storeFailures``) and reported as a
    /// `.failed([], reason:)` outcome with code `storeFailure`; the caller tries again.
    private func reportStoreFailure(_ what: String, _ error: any Error) {
        counters.storeFailures += 1
        emit(
            .failed(
                [],
                reason: SegmentDeliveryError(
                    code: .storeFailure, underlyingDescription: redact(String(describing: error)), underlying: error,
                    detail: what)))
    }

    /// A store that cannot be read now (a full disk, a lost connection) keeps its messages: try again after a
    /// second rather than stop sending. False when cancelled.
    private func waitAfterStoreFailure() async -> Bool {
        do {
            try await clock.sleep(for: .seconds(1))
            return lifecycle != .stopped
        } catch {
            return false
        }
    }

    /// Waits for more work or until `deadline`, whichever comes first.
    private func waitForWork(since generation: UInt64, until deadline: Duration) async {
        let clock = self.clock
        let work = self.work
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await clock.sleepUntil(deadline) }
            group.addTask { _ = await work.wait(since: generation) }
            _ = await group.next()
            group.cancelAll()
        }
    }

    /// Sleeps while a `Retry-After` pause lasts, checking again after each sleep (another batch may have
    /// made it longer); false when cancelled.
    private func waitOutPause() async -> Bool {
        while let until = pausedUntil {
            guard clock.now() < until else {
                pausedUntil = nil
                await storeCall("the store could not clear the Retry-After pause") {
                    try await store.setPause(until: nil, tenant: tenant)
                }
                break
            }
            do {
                try await clock.sleepUntil(until)
            } catch {
                return false
            }
        }
        return !Task.isCancelled
    }

    /// Sends one claim until every message is delivered or failed; false when stopped first (the claim's
    /// unsettled messages go back to the store).
    func deliver(_ claim: SegmentClaim) async -> Bool {
        let machine = BatchStateMachine(
            policy: configuration.retry, resuming: claim.retryState, now: clock.now(), wallNow: wallClock())
        // Halves of a batch refused with 400 or 413 go first, in order.
        var parts = [(range: claim.messages.indices, machine: machine)]
        while !parts.isEmpty {
            var (range, machine) = parts.removeFirst()
            let messages = range == claim.messages.indices ? claim.messages : Array(claim.messages[range])
            attempts: while true {
                guard await waitOutPause() else { return false }
                let request = makeRequest(messages, retryCount: machine.retryCount)
                counters.requests += 1
                var action: BatchStateMachine.Action
                do {
                    let response = try await transport.send(request)
                    action = machine.received(
                        response, messages: range, unitEnds: claim.unitEnds, now: clock.now(), wallNow: wallClock(),
                        bodyText: { self.text(of: response.body, sent: request.body) },
                        location: { response.headerField("Location").map { self.redact($0) } })
                } catch {
                    if Task.isCancelled { return false }
                    action = machine.threw(error, description: redact(String(describing: error)), now: clock.now())
                }
                action = BatchStateMachine.jittered(action, jitter)
                switch action {
                case .delivered(let statusCode):
                    await storeCall(
                        "the store could not record that \(messages.count) messages were delivered; they stay in it"
                    ) { try await store.settle(claim, messages: range, as: .delivered) }
                    counters.delivered += messages.count
                    if hasSubscribers {
                        emit(.delivered(messageIDs: messages.map(\.messageID), statusCode: statusCode))
                    }
                    break attempts
                case .fail(let reason):
                    await storeCall(
                        "the store could not record that \(messages.count) messages failed; they stay in it"
                    ) { try await store.settle(claim, messages: range, as: .failed(reason.description)) }
                    counters.failed += messages.count
                    emit(.failed(messages, reason: reason))
                    break attempts
                case .split(let middle):
                    parts.insert(
                        contentsOf: [(range.lowerBound..<middle, machine), (middle..<range.upperBound, machine)], at: 0)
                    break attempts
                case .retry(let delay, let pausesPipeline, let reason):
                    counters.retries += 1
                    let state = machine.retryState(now: clock.now(), wallNow: wallClock(), nextAttemptIn: delay)
                    await storeCall("the store could not keep the retry schedule of \(messages.count) messages") {
                        try await store.settle(claim, messages: range, as: .retry(state))
                    }
                    emit(
                        .retrying(
                            messageIDs: messages.map(\.messageID), retryCount: machine.retryCount, delay: delay,
                            reason: reason))
                    if pausesPipeline {
                        // Rate limited: the whole pipeline waits (every worker checks the pause before sending).
                        let until = clock.now() + delay
                        if pausedUntil.map({ until > $0 }) ?? true {
                            pausedUntil = until
                            let end = wallClock().adding(delay)
                            await storeCall("the store could not keep the Retry-After pause") {
                                try await store.setPause(until: end, tenant: tenant)
                            }
                        }
                    } else {
                        do {
                            try await clock.sleep(for: delay)
                        } catch {
                            return false
                        }
                    }
                }
            }
        }
        return true
    }

    /// Runs a store call after sending; a failure is never swallowed: it is counted
    /// (``Counters/storeFailures``) and reported as a `.failed([], reason:)` outcome with code `storeFailure`
    /// and the error, and the store keeps the messages as they were (unsettled: a durable store sends them
    /// again after a restart, or once the claim's lease passes; at least once).
    private func storeCall(_ what: String, _ call: () async throws -> Void) async {
        do {
            try await call()
        } catch {
            counters.storeFailures += 1
            emit(
                .failed(
                    [],
                    reason: SegmentDeliveryError(
                        code: .storeFailure, underlyingDescription: redact(String(describing: error)),
                        underlying: error, detail: what)))
        }
    }

    private func makeRequest(_ messages: [SegmentMessage], retryCount: Int) -> SegmentRequest {
        // The headers of a first attempt are built once; a retry copies them with its count.
        var headerFields = self.headerFields
        if retryCount > 0 { headerFields["X-Retry-Count"] = String(retryCount) }
        return SegmentRequest(
            url: batchURL,
            method: "POST",
            headerFields: headerFields,
            // `sentAt` is the time of this attempt: Segment corrects event times with it.
            body: SegmentBatch.encode(messages, sentAt: wallClock(), writeKey: writeKey),
            timeout: configuration.requestTimeout
        )
    }
}
