extension SegmentPipeline {
    /// Accepts messages that travel together (an `identify` and its `group`): they are stored as one unit,
    /// never split across batches, and kept in order.
    ///
    /// Returns once the messages are accepted: in the store, as durable as the store makes them. When the
    /// store is full it waits for room, in order with other waiting callers (or throws, with
    /// ``FullQueuePolicy/fail``).
    ///
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/queueFull`` (fail-fast
    ///   policy), ``SegmentDeliveryError/Code/shutDown``, ``SegmentDeliveryError/Code/cancelled`` (the task
    ///   was cancelled while waiting), ``SegmentDeliveryError/Code/messageTooLarge``,
    ///   ``SegmentDeliveryError/Code/unitTooLarge`` or ``SegmentDeliveryError/Code/storeFailure``. Nothing
    ///   is accepted when it throws.
    ///
    ///   A unit that could never be accepted (a message over ``Configuration/batch``'s
    ///   `maximumMessageBytes`, a unit that does not fit one batch) throws `messageTooLarge` or
    ///   `unitTooLarge` in any state, with any store, also after a shutdown was asked for: the input's own
    ///   fault is reported before ``SegmentDeliveryError/Code/shutDown``.
    public nonisolated func record(_ messages: [SegmentMessage]) async throws {
        try await record(messages, whenOrdered: nil)
    }

    /// Accepts messages as ``record(_:)`` does, and calls `whenOrdered` as soon as their place relative to
    /// every later `record` is fixed, which may be before they are durable.
    ///
    /// With a store that appends in two steps (``SegmentStagedAppendStore``, the file store) that is once
    /// the group append that took the whole unit has written it: groups are written one at a time, in
    /// arrival order, and the store makes units claimable in the order they were written, so a unit written
    /// later is never sent before this one. A unit that goes the way of the actor (the store took none of it
    /// because it is full, others wait for room, a shutdown was asked for) is not told: it may still be
    /// written behind later ones. With any other store (in memory, or one whose appends may be under way two
    /// at a time) it is never called: the order is fixed only when `record` returns.
    ///
    /// `whenOrdered` is called at most once, before this returns or throws; the caller must still treat a
    /// throw as "nothing accepted" (a failed `fsync` fails the unit after `whenOrdered`).
    nonisolated func record(_ messages: [SegmentMessage], whenOrdered: (@Sendable () -> Void)?) async throws {
        guard !messages.isEmpty else { return }
        guard memoryStore == nil else { return try await recordInMemory(messages) }
        let bytes = try check(messages)
        if mayAppendAtOnce, try await appendInGroup([messages], bytes: bytes, whenOrdered: whenOrdered) == 1 {
            return
        }
        try await recordWaiting([messages], bytes: bytes)
    }

    /// Accepts many units in order, as ``record(_:)`` does each of them, with one call into the actor and
    /// one append to the store.
    ///
    /// - Throws: As ``record(_:)``, for the first unit that cannot be accepted; the units before it were
    ///   accepted, the ones after it were not. When the first unit is itself too large, its
    ///   `messageTooLarge` or `unitTooLarge` comes before ``SegmentDeliveryError/Code/shutDown``, as with
    ///   ``record(_:)``; a shutdown stops an earlier, valid unit first.
    public nonisolated func record(contentsOf units: [[SegmentMessage]]) async throws {
        var valid: [[SegmentMessage]] = []
        valid.reserveCapacity(units.count)
        var bytes = 0
        var invalid: SegmentDeliveryError?
        for unit in units where !unit.isEmpty {
            do throws(SegmentDeliveryError) {
                bytes += try check(unit)
            } catch {
                invalid = error
                break
            }
            valid.append(unit)
        }
        if !valid.isEmpty {
            if memoryStore == nil, mayAppendAtOnce {
                let accepted = try await appendInGroup(valid, bytes: bytes)
                if accepted < valid.count {
                    let rest = Array(valid[accepted...])
                    try await recordWaiting(rest, bytes: rest.reduce(0) { $0 + MessageQueue.bytes(of: $1) })
                }
            } else {
                try await recordWaiting(valid, bytes: bytes)
            }
        } else if let invalid {
            // The first unit is at fault whatever the pipeline's state: the same error from every store.
            throw invalid
        } else {
            try await recordWaiting([], bytes: 0)
        }
        if let invalid { throw invalid }
    }

    /// `record` into the in-memory store: on the actor, without suspending unless the store is full. The
    /// unit is checked before the pipeline's state, as on the way of the other stores.
    private func recordInMemory(_ messages: [SegmentMessage]) async throws {
        let bytes = try check(messages)
        try checkAccepting()
        try await accept([messages], bytes: bytes)
    }

    /// `record` on the actor: checks that the pipeline accepts, then appends, waiting for room as the policy
    /// says (in order with other waiting callers). Without units, only the check.
    private func recordWaiting(_ units: [[SegmentMessage]], bytes: Int) async throws {
        try checkAccepting()
        guard !units.isEmpty else { return }
        try await accept(units, bytes: bytes)
    }

    /// Whether `record` may append to a store that is not in memory without entering the actor: the
    /// pipeline accepts (no shutdown asked for, not stopped) and no caller waits for room (a newcomer does
    /// not pass them). Otherwise, or when the store takes less than everything, the caller goes the way of
    /// the actor (``recordWaiting(_:bytes:)``), which checks again, waits for room or throws.
    private nonisolated var mayAppendAtOnce: Bool {
        !shutdownRequested.isOpen && spaceWaiters.isEmptyAndShut == (true, false)
            && !appendGroup.withLock { $0.spaceTurnPending }
    }

    func checkAccepting() throws(SegmentDeliveryError) {
        guard lifecycle == .idle || lifecycle == .running, !shutdownRequested.isOpen else {
            throw SegmentDeliveryError(code: .shutDown, detail: "the pipeline accepts no more messages")
        }
    }

    /// The unit's bytes in a batch body, once it is known to fit one batch.
    private nonisolated func check(_ unit: [SegmentMessage]) throws(SegmentDeliveryError) -> Int {
        let limits = configuration.batch
        for message in unit where message.byteCount > limits.maximumMessageBytes {
            throw SegmentDeliveryError(
                code: .messageTooLarge,
                detail: "message '\(message.messageID)'"
                    + (message.responseID.map { " from response '\($0)'" } ?? "")
                    + " is \(message.byteCount) bytes, more than \(limits.maximumMessageBytes)"
            )
        }
        let bytes = MessageQueue.bytes(of: unit)
        guard unit.count <= limits.maximumMessages, envelopeBytes + bytes <= limits.maximumBytes else {
            throw SegmentDeliveryError(
                code: .unitTooLarge,
                detail: "\(unit.count) messages of \(bytes) bytes"
                    + (unit.first?.responseID.map { " from response '\($0)'" } ?? "")
                    + " do not fit in one batch of at most \(limits.maximumMessages) messages and "
                    + "\(limits.maximumBytes) bytes with its envelope"
            )
        }
        return bytes
    }

    /// Appends the units, waiting for room (in order with other waiting callers) as the policy says.
    private func accept(_ units: [[SegmentMessage]], bytes: Int) async throws {
        var rest = units[...]
        var restBytes = bytes
        var hadTurn = false
        while true {
            // Room freed after this (a claim, a settlement) reaches a caller that is not yet waiting.
            let (generation, waiting) = spaceWaiters.generationAndCount
            if hadTurn || (waiting == 0 && !spaceTurnPending) {
                let accepted = try await append(
                    rest.startIndex == 0 && rest.endIndex == units.count ? units : Array(rest), bytes: restBytes)
                rest = rest.dropFirst(accepted)
                if rest.isEmpty { break }
                if accepted > 0 { restBytes = rest.reduce(0) { $0 + MessageQueue.bytes(of: $1) } }
            }
            guard configuration.queue.whenFull == .wait else {
                if hadTurn { passSpaceTurn() }
                throw SegmentDeliveryError(
                    code: .queueFull,
                    detail: "\(counters.queuedMessages) messages of \(counters.queuedBytes) bytes are waiting "
                        + "to be sent")
            }
            counters.waitingToRecord += 1
            let wake = await spaceWaiters.wait(since: generation, atFront: hadTurn, inTurn: true)
            counters.waitingToRecord -= 1
            spaceTurnPending = false
            hadTurn = true
            if wake == .cancelled {
                passSpaceTurn()
                throw SegmentDeliveryError(
                    code: .cancelled, detail: "the task was cancelled while it waited for room in the store")
            }
            do throws(SegmentDeliveryError) {
                try checkAccepting()
            } catch {
                passSpaceTurn()
                throw error
            }
        }
        if hadTurn { passSpaceTurn() }
    }

    /// Lets the next waiting caller try (room may be left after this one got in).
    private func passSpaceTurn() {
        if spaceWaiters.signalFirst() { spaceTurnPending = true }
    }

    /// Room may have been freed (a claim, a settlement): the first waiting caller tries again.
    func roomMayBeFree() {
        guard !spaceTurnPending else { return }
        passSpaceTurn()
    }

    /// Appends to the store and accounts for what it accepted; the number of units accepted.
    ///
    /// - Parameter bytes: The units' bytes (``MessageQueue/bytes(of:)`` summed), counted once by the caller.
    private func append(_ units: [[SegmentMessage]], bytes: Int) async throws -> Int {
        guard let memoryStore else { return try await appendInGroup(units, bytes: bytes) }
        let accepted = memoryStore.appendNow(units, tenant: tenant)
        guard accepted > 0 else { return 0 }
        if accepted == units.count {
            noteAccepted(messages: units.reduce(0) { $0 + $1.count }, bytes: bytes)
        } else {
            let taken = units.prefix(accepted)
            noteAccepted(
                messages: taken.reduce(0) { $0 + $1.count }, bytes: taken.reduce(0) { $0 + MessageQueue.bytes(of: $1) })
        }
        return accepted
    }

    /// Counts messages the store accepted, and wakes a worker that waits for them.
    private func noteAccepted(messages: Int, bytes: Int) {
        counters.accepted += messages
        counters.queuedMessages += messages
        counters.queuedBytes += bytes
        storedThrough += messages
        if oldestUnclaimed == nil { oldestUnclaimed = clock.now() }
        appendedSinceClaim.messages += messages
        appendedSinceClaim.bytes += bytes
        if idleWorkers > 0
            || (lingeringWorkers > 0
                && (appendedSinceClaim.messages >= configuration.batch.maximumMessages
                    || appendedSinceClaim.bytes >= configuration.batch.maximumBytes - envelopeBytes))
        {
            work.signalAll()
        }
    }

    /// Appends to a store that is not in memory together with every caller that comes while appends are
    /// under way: one of them (the first to find no turn free, or the first to have waited) makes a single
    /// `append` of everyone's units in arrival order, and each gets back how many of its own units were
    /// taken (a prefix of the group's, so a full store takes whole callers first). With a file store that
    /// fsyncs before acknowledging, a crowd of one-unit callers costs one call into the store, one write and
    /// one fsync wait per group instead of one each (group append).
    ///
    /// The group is gathered behind a lock, off the actor: a caller that joins a group waits for it without
    /// entering the actor, and the one that leads enters it once, to count what the whole group appended
    /// before any of its callers returns (so a ``flush()`` after `record` returns covers the messages).
    ///
    /// A store that appends in two steps (``SegmentStagedAppendStore``, the file store) is held only while
    /// it writes: the next group is written while this one waits for its fsync, so one fsync pass covers
    /// every group written before it began, and a caller waits for about one and a half passes instead of
    /// two and a half (pipelined group commit).
    ///
    /// With a staged store, each caller whose units the write took whole has its `whenOrdered` called
    /// (``record(_:whenOrdered:)``) as soon as the write returns, before the wait for durability; a caller
    /// taken only in part, or not at all, is not: the rest of its units go on later, behind others.
    ///
    /// - Throws: ``SegmentDeliveryError`` with code ``SegmentDeliveryError/Code/storeFailure`` when the
    ///   store's `append` threw, to every caller of the group (none of their units was acknowledged).
    private nonisolated func appendInGroup(
        _ units: [[SegmentMessage]], bytes: Int, whenOrdered: (@Sendable () -> Void)? = nil
    ) async throws -> Int {
        let turns = stagedStore == nil ? AppendGroup.maximumInFlight : AppendGroup.maximumStaging
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<AppendGroup.Turn, Never>) in
            let leads = appendGroup.withLock { group -> Bool in
                guard group.inFlight < turns else {
                    group.waiting.append((units, bytes, whenOrdered, continuation))
                    return false
                }
                group.inFlight += 1
                return true
            }
            if leads { continuation.resume(returning: .lead([])) }
        }
        var followers: [AppendGroup.Waiter]
        switch turn {
        case .done(let result): return try result.get()
        // Our turn to lead: the append that ended passed its place on to us, with every caller that waited
        // with us.
        case .lead(let group): followers = group
        }
        if stagedStore != nil, followers.isEmpty {
            // The first of a crowd that a pass released leads alone: let the others that are coming back
            // join it first, so one write and one ticket serve them all.
            await Task.yield()
            followers = appendGroup.withLock { group in
                defer { group.waiting = [] }
                return group.waiting
            }
        }
        var all = units
        for follower in followers { all += follower.units }
        // Counted as under way before the store sees it, so a recovery never counts it as well.
        await beginAppend()
        defer { endAppend() }
        var result: Result<Int, SegmentDeliveryError>
        if let stagedStore {
            var passed = false
            do {
                let staged = try await stagedStore.stageAppend(all, tenant: tenant)
                Self.noteOrdered(own: units.count, whenOrdered, followers, accepted: staged.accepted)
                passAppendTurn()
                passed = true
                try await staged.durable()
                result = .success(staged.accepted)
            } catch {
                if !passed { passAppendTurn() }
                result = .failure(storeFailure(error))
            }
        } else {
            do {
                result = .success(try await store.append(all, tenant: tenant))
            } catch {
                result = .failure(storeFailure(error))
            }
            passAppendTurn()
        }
        // Each caller's share of what the store took: a prefix of the group's units, whole callers first.
        let taken = (try? result.get()) ?? 0
        let own = min(taken, units.count)
        if taken > 0 {
            // Counted before any caller of the group returns.
            var messages = 0
            for unit in all.prefix(taken) { messages += unit.count }
            var acceptedBytes = Self.bytes(of: units, bytes, taking: own)
            var left = taken - own
            for follower in followers where left > 0 {
                let share = min(left, follower.units.count)
                acceptedBytes += Self.bytes(of: follower.units, follower.bytes, taking: share)
                left -= share
            }
            await noteAccepted(messages: messages, bytes: acceptedBytes)
        }
        var left = taken - own
        for follower in followers {
            switch result {
            case .success:
                let share = min(left, follower.units.count)
                left -= share
                follower.continuation.resume(returning: .done(.success(share)))
            case .failure(let error):
                follower.continuation.resume(returning: .done(.failure(error)))
            }
        }
        _ = try result.get()
        return own
    }

    /// Calls `whenOrdered` of each caller of a staged group (the leader's first, with `own` units, then the
    /// followers') whose units are all among the `accepted` the write took: their place is fixed.
    private static func noteOrdered(
        own: Int, _ whenOrdered: (@Sendable () -> Void)?, _ followers: [AppendGroup.Waiter], accepted: Int
    ) {
        guard accepted >= own else { return }
        whenOrdered?()
        var left = accepted - own
        for follower in followers {
            // A follower taken in part waits behind others for the rest: not ordered yet, nor is anyone after.
            guard left >= follower.units.count else { return }
            left -= follower.units.count
            follower.whenOrdered?()
        }
    }

    /// Waits while the pipeline recovers, then counts an append as under way (``recoverWithoutAppends(_:)``).
    private nonisolated func beginAppend() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = appendGroup.withLock { group -> Bool in
                guard group.recovering else {
                    group.uncounted += 1
                    return true
                }
                group.waitingForRecovery.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// An append under way has been counted (or failed): a recovery waiting for the last one goes on.
    private nonisolated func endAppend() {
        let recovery = appendGroup.withLock { group -> CheckedContinuation<Void, Never>? in
            group.uncounted -= 1
            guard group.uncounted == 0 else { return nil }
            defer { group.recoveryWaitsForAppends = nil }
            return group.recoveryWaitsForAppends
        }
        recovery?.resume()
    }

    /// Runs `recover` (the store's recovery and the counting of what it found) with no append under way:
    /// it waits for the appends under way to be counted, and appends that come meanwhile wait for it to end.
    /// Otherwise a unit appended while the store counts what it holds could be counted twice (by the
    /// recovery and by its `record`), and a ``flush()`` would wait for messages that do not exist.
    func recoverWithoutAppends<T>(_ recover: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = appendGroup.withLock { group -> Bool in
                group.recovering = true
                guard group.uncounted > 0 else { return true }
                group.recoveryWaitsForAppends = continuation
                return false
            }
            if now { continuation.resume() }
        }
        defer {
            let waiting = appendGroup.withLock { group -> [CheckedContinuation<Void, Never>] in
                group.recovering = false
                group.uncounted += group.waitingForRecovery.count
                defer { group.waitingForRecovery = [] }
                return group.waitingForRecovery
            }
            for continuation in waiting { continuation.resume() }
        }
        return try await recover()
    }

    /// The bytes of the first `taken` of `units`, whose bytes in all are `bytes`.
    private static func bytes(of units: [[SegmentMessage]], _ bytes: Int, taking taken: Int) -> Int {
        taken == units.count ? bytes : units.prefix(taken).reduce(0) { $0 + MessageQueue.bytes(of: $1) }
    }

    /// The error a `record` caller gets when the store did not take its messages.
    private nonisolated func storeFailure(_ error: any Error) -> SegmentDeliveryError {
        SegmentDeliveryError(
            code: .storeFailure, underlyingDescription: redact(String(describing: error)), underlying: error,
            detail: "the store did not take the messages; nothing was accepted")
    }

    /// Gives this append's turn to the callers waiting (one of them leads them all), or frees it.
    private nonisolated func passAppendTurn() {
        let next = appendGroup.withLock { group -> (leader: AppendGroup.Waiter, rest: [AppendGroup.Waiter])? in
            guard !group.waiting.isEmpty else {
                group.inFlight -= 1
                return nil
            }
            var next = group.waiting
            group.waiting = []
            return (next.removeFirst(), next)
        }
        next?.leader.continuation.resume(returning: .lead(next?.rest ?? []))
    }

    /// A waiting caller was woken and has not tried again yet: later callers queue behind it.
    var spaceTurnPending: Bool {
        get { appendGroup.withLock { $0.spaceTurnPending } }
        set { appendGroup.withLock { $0.spaceTurnPending = newValue } }
    }
}

extension SegmentPipeline {
    /// How many `record` callers wait to join the next group append (tests watch it).
    package nonisolated var callersWaitingToAppend: Int { appendGroup.withLock { $0.waiting.count } }
}

/// The `record` callers waiting to join the next append to a store that is not in memory (behind the
/// pipeline's lock, so joining a group does not enter the actor), and whether a caller woken to try for
/// room has not tried yet.
struct AppendGroup: Sendable {
    /// What a waiting caller is told: lead the next append, or what the one it joined did.
    enum Turn: Sendable {
        /// Lead the next append, for these callers too.
        case lead([Waiter])
        case done(Result<Int, SegmentDeliveryError>)
    }

    /// A caller waiting to join: its units, their bytes, what to call once their order is fixed (a staged
    /// store wrote them all, ``SegmentPipeline/record(_:whenOrdered:)``), and where to tell it the outcome.
    typealias Waiter = (
        units: [[SegmentMessage]], bytes: Int, whenOrdered: (@Sendable () -> Void)?,
        continuation: CheckedContinuation<Turn, Never>
    )

    /// Appends under way at once, at most: two, so one group writes while the one before waits for its
    /// fsync, and the callers that come meanwhile gather for the next.
    static let maximumInFlight = 2
    /// Appends being written at once to a ``SegmentStagedAppendStore``, at most: one, so the callers that
    /// come while it writes gather for the next; any number wait for their fsync at the same time.
    static let maximumStaging = 1

    /// This pipeline's appends under way; with ``maximumInFlight`` of them, callers wait in ``waiting``.
    var inFlight = 0
    var waiting: [Waiter] = []
    /// A caller waiting for room was woken and has not tried again yet: later callers queue behind it.
    var spaceTurnPending = false
    /// Group appends begun (or about to be) and not yet counted: their units may be in the store and not
    /// in the pipeline's counters.
    var uncounted = 0
    /// The pipeline recovers (``SegmentPipeline/recoverWithoutAppends(_:)``): group appends wait.
    var recovering = false
    var waitingForRecovery: [CheckedContinuation<Void, Never>] = []
    /// The recovery, waiting for the appends under way to be counted.
    var recoveryWaitsForAppends: CheckedContinuation<Void, Never>?
}
