import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import RefinerSegment

/// Delivers the outbox to Segment from one instance of a cluster: every instance runs one, against one database.
///
/// `run()` holds a `LISTEN` connection and ``Configuration/concurrency`` workers. A worker takes a tenant's sender
/// lease (one active sender per tenant across the cluster), sends up to ``Configuration/batchesPerTurn`` batches
/// of it one at a time, oldest first, renewing the leases while a request is in flight, then hands the tenant
/// back so every tenant gets its turn. Answers follow ``SegmentRetryPolicy``: 2xx deletes the batch, a drop
/// moves it to the dead letters with the reason (a 400 or 413 of several messages is split in halves first, so
/// one poisoned message fails alone), a retry waits the backoff (the tenant's later messages wait behind it), and
/// a `Retry-After` pauses the tenant on every instance without spending an attempt. Idle workers sleep until a
/// `NOTIFY` from an enqueue, until the next pause or lease ends, or ``Configuration/idlePoll`` at most: no tight
/// polling.
///
/// Cancelling `run()` stops at once: batches in flight stay leased and are sent again, by any instance, once
/// their lease ends (at-least-once; messageIds are deterministic, so Segment drops the copies).
///
/// Connections of the outbox's client: the listener holds one for the whole run; a worker leases one per
/// statement (two for a moment, when its lease renewal runs beside a settlement) and never waits for one while
/// it holds another. So the pool (`maximumConnections`) must hold at least 2 beside the host's own (with 1, the
/// workers wait for ever behind the listener: postgres-nio does not tell the pool's size, so this is not
/// checked); `2 * concurrency + 1` means no worker ever waits for a connection (Docs/RunningSeveralInstances.md).
public struct PostgresOutboxSender: Sendable {
    /// Where a tenant's messages go.
    public struct Destination: Sendable {
        /// The tenant's write key.
        public var writeKey: WriteKey
        /// The tenant's endpoint.
        public var endpoint: SegmentEndpoint

        /// Creates a destination.
        public init(writeKey: WriteKey, endpoint: SegmentEndpoint = .us) {
            self.writeKey = writeKey
            self.endpoint = endpoint
        }
    }

    /// How the sender works.
    public struct Configuration: Sendable {
        /// Tenants this instance sends at once (one batch in flight each): 4. Each uses one or two of the
        /// client's connections at a time (see ``PostgresOutboxSender``).
        public var concurrency: Int
        /// Batches of one tenant sent before the tenant is handed back, for fairness: 8.
        public var batchesPerTurn: Int
        /// Most messages per batch: Segment's 2,500.
        public var maximumBatchMessages: Int
        /// Segment's retry contract: backoff, attempts, `Retry-After` cap.
        public var retryPolicy: SegmentRetryPolicy
        /// The longest an idle worker sleeps without a notification: 5 s (a lost `NOTIFY`, a reconnect).
        public var idlePoll: Duration
        /// How long a request may take.
        public var requestTimeout: Duration
        /// How long a tenant with no destination waits before it is looked up again: 60 s.
        public var unknownTenantPause: Duration

        /// Creates a configuration.
        public init(
            concurrency: Int = 4,
            batchesPerTurn: Int = 8,
            maximumBatchMessages: Int = SegmentBatch.maximumMessages,
            retryPolicy: SegmentRetryPolicy = SegmentRetryPolicy(),
            idlePoll: Duration = .seconds(5),
            requestTimeout: Duration = .seconds(30),
            unknownTenantPause: Duration = .seconds(60)
        ) {
            self.concurrency = concurrency
            self.batchesPerTurn = batchesPerTurn
            self.maximumBatchMessages = maximumBatchMessages
            self.retryPolicy = retryPolicy
            self.idlePoll = idlePoll
            self.requestTimeout = requestTimeout
            self.unknownTenantPause = unknownTenantPause
        }
    }

    /// What the sender did, for logs, metrics and tests. Carries message ids, never write keys.
    public enum Event: Sendable {
        /// A batch was claimed (before it is sent).
        case claimed(OutboxBatch)
        /// Messages were delivered (2xx) and deleted.
        case delivered(tenant: String, [OutboxMessage])
        /// Messages failed for good and were moved to the dead letters.
        case failed(tenant: String, [OutboxMessage], reason: String)
        /// A batch will be tried again after the delay.
        case retrying(tenant: String, after: Duration, reason: String)
        /// The tenant is paused on every instance (`Retry-After`).
        case paused(tenant: String, for: Duration)
    }

    /// The outbox it drains.
    public let outbox: PostgresOutbox
    /// How it works.
    public let configuration: Configuration
    let transport: any SegmentTransport
    let destination: @Sendable (String) async throws -> Destination?
    let onEvent: @Sendable (Event) -> Void

    /// Creates a sender.
    ///
    /// - Parameters:
    ///   - destination: The write key and endpoint of a tenant; `nil` leaves the tenant's messages in the outbox
    ///     and looks again after ``Configuration/unknownTenantPause``.
    ///   - onEvent: Called for every claim and settlement, from the sender's tasks; keep it quick.
    public init(
        outbox: PostgresOutbox,
        transport: some SegmentTransport,
        configuration: Configuration = Configuration(),
        destination: @escaping @Sendable (String) async throws -> Destination?,
        onEvent: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.outbox = outbox
        self.transport = transport
        self.configuration = configuration
        self.destination = destination
        self.onEvent = onEvent
    }

    /// Sends until cancelled (or until a worker fails with an error other than the server's, which is thrown).
    ///
    /// Errors of the database are logged and retried after ``Configuration/idlePoll``, so a restarted server or
    /// a failover does not stop delivery.
    public func run() async throws {
        let signal = WakeSignal()
        let serving = ServedTenants()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await listen(signal) }
            for _ in 0..<max(1, configuration.concurrency) {
                group.addTask { try await work(signal, serving) }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func listen(_ signal: WakeSignal) async {
        while !Task.isCancelled {
            do {
                try await outbox.client.withConnection { connection in
                    try await connection.listen(on: outbox.configuration.channel) { notifications in
                        signal.wake()  // anything enqueued while not listening
                        for try await _ in notifications { signal.wake() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                outbox.logger.warning(
                    "refiner-segment outbox listener failed; listening again",
                    metadata: ["error": "\(PostgresStoreError.summary(of: error))"]
                )
            }
            try? await Task.sleep(for: configuration.idlePoll)
        }
    }

    /// One worker: takes a tenant no other worker of this instance serves, serves it, and again.
    ///
    /// The exclusion is the instance's own: the database knows the lease by owner, which every worker of an
    /// instance shares, so a worker whose lease ran out mid-turn (a stall) would otherwise see its tenant taken
    /// by a second worker of the same instance, both would send it (out of order), and the first to end its turn
    /// would hand the tenant back while the other still had a batch out: another instance then claimed that
    /// batch within its lease.
    private func work(_ signal: WakeSignal, _ serving: ServedTenants) async throws {
        while !Task.isCancelled {
            let generation = signal.generation
            var wait = configuration.idlePoll
            do {
                if let lease = try await outbox.acquireTenant(excluding: serving.tenants) {
                    // The list was read before the statement ran: a worker that took the tenant since, and whose
                    // lease ran out meanwhile (a stall as long as the lease), keeps it. This worker's acquisition
                    // only renewed that lease and restarted the mark, which costs the other worker an attempt
                    // counted on its batch in flight and nothing else (its next claim deletes what it delivered
                    // and skips it).
                    guard serving.insert(lease.tenant) else { continue }
                    defer { serving.remove(lease.tenant) }
                    try await serve(lease.tenant)
                    continue
                }
                if let next = try await outbox.nextWakeUp() { wait = min(wait, max(next, .milliseconds(5))) }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                outbox.logger.warning(
                    "refiner-segment outbox sender failed; trying again",
                    metadata: ["error": "\(PostgresStoreError.summary(of: error))"]
                )
            }
            await signal.wait(after: generation, upTo: wait)
        }
    }

    /// Sends batches of a held tenant, then hands it back.
    ///
    /// A batch Segment accepted whole is deleted by the statement that claims the next one
    /// (``PostgresOutbox/settleDelivered(_:claimingNextOf:maximumMessages:maximumBytes:lease:)``): one round trip
    /// and one commit per batch. The turn's last one is deleted on its own.
    private func serve(_ tenant: String) async throws {
        // Delivered (2xx) and not deleted yet: the next claim deletes them, or the end of the turn.
        var accepted: [OutboxMessage] = []
        do {
            guard let destination = try await destination(tenant) else {
                outbox.logger.warning(
                    "refiner-segment outbox has messages of an unknown tenant", metadata: ["tenant": "\(tenant)"])
                try await outbox.pause(tenant: tenant, for: configuration.unknownTenantPause)
                try await outbox.releaseTenant(tenant)
                return
            }
            let budget = SegmentBatch.maximumBytes - SegmentBatch.envelopeBytes(writeKey: destination.writeKey)
            turn: for _ in 0..<max(1, configuration.batchesPerTurn) {
                let claimed: OutboxBatch?
                if accepted.isEmpty {
                    claimed = try await outbox.claimBatch(
                        of: tenant, maximumMessages: configuration.maximumBatchMessages, maximumBytes: budget)
                } else {
                    claimed = try await outbox.settleDelivered(
                        accepted, claimingNextOf: tenant, maximumMessages: configuration.maximumBatchMessages,
                        maximumBytes: budget)
                    onEvent(.delivered(tenant: tenant, accepted))
                    accepted = []
                }
                guard let batch = claimed else { break }
                onEvent(.claimed(batch))
                switch try await deliver(batch, to: destination) {
                case .accepted: accepted = batch.messages
                case .settled: break
                case .stop: break turn
                }
                // A batch well short of both limits emptied the tenant: skip the claim that would find nothing
                // (anything enqueued since wakes a worker, or is found at the tenant's next turn).
                let bytes = batch.messages.reduce(0) { $0 + $1.message.byteCount + 1 }
                if batch.messages.count < configuration.maximumBatchMessages / 2 && bytes < budget / 2 { break }
            }
            if !accepted.isEmpty {
                try await outbox.settleDelivered(accepted)
                onEvent(.delivered(tenant: tenant, accepted))
                accepted = []
            }
        } catch {
            // Cancelled or failed: the tenant's lease runs out by itself; hand it back when the server answers, and
            // delete what was delivered (else it is sent again once the lease ends: harmless, messageIds repeat).
            if !(error is CancellationError) {
                if !accepted.isEmpty { try? await outbox.settleDelivered(accepted) }
                try? await outbox.releaseTenant(tenant)
            }
            throw error
        }
        try await outbox.releaseTenant(tenant)
    }

    /// What became of the part of a batch that was not settled on the spot.
    private enum Verdict {
        /// Segment took the whole batch (2xx); its rows are not deleted yet.
        case accepted
        case settled
        case retry(reason: String)
        case pause(Duration)
    }

    /// What the tenant's turn does after a batch.
    private enum Outcome {
        /// Delivered and still to delete: the next claim deletes it, or the end of the turn.
        case accepted
        /// Settled (delivered in parts, or failed for good): on with the next batch.
        case settled
        /// Paused or waiting for a retry: the turn ends.
        case stop
    }

    /// Sends a batch while renewing its lease, and says whether the tenant may go on with its next batch.
    private func deliver(_ batch: OutboxBatch, to destination: Destination) async throws -> Outcome {
        let verdict = try await withThrowingTaskGroup(of: Verdict?.self) { group in
            group.addTask { try await send(batch.messages, of: batch, to: destination) }
            group.addTask {
                let interval = outbox.configuration.lease / 3
                while true {
                    try await Task.sleep(for: interval)
                    guard try await outbox.renew(batch) else { return nil }  // lost: send anyway, settle owner-checked
                }
            }
            var verdict: Verdict?
            while let result = try await group.next() {
                if let result {
                    verdict = result
                    break
                }
            }
            group.cancelAll()
            return verdict ?? .settled
        }
        switch verdict {
        case .accepted:
            return .accepted
        case .settled:
            return .settled
        case .pause(let duration):
            try await outbox.pause(batch, for: duration)
            onEvent(.paused(tenant: batch.tenant, for: duration))
            return .stop
        case .retry(let reason):
            let attempts = batch.messages.map(\.attempts).max() ?? 1
            let firstFailure = batch.messages.compactMap(\.firstFailureAt).min() ?? Date()
            let delay = SegmentPipeline.equalJitter(configuration.retryPolicy.backoff(afterFailures: attempts))
            let elapsed = Date().timeIntervalSince(firstFailure)
            if attempts >= configuration.retryPolicy.maximumAttempts
                || elapsed + delay.seconds > configuration.retryPolicy.maximumRetryDuration.seconds
            {
                let reason = "gave up after \(attempts) attempts: \(reason)"
                reportFailed(try await outbox.deadLetter(batch.messages, reason: reason), of: batch, reason: reason)
                return .settled
            }
            try await outbox.retryLater(batch, after: delay)
            onEvent(.retrying(tenant: batch.tenant, after: delay, reason: reason))
            return .stop
        }
    }

    /// Reports the messages `deadLetter` moved; the ones it left were claimed since by another holder, which
    /// gives its own verdict on them.
    private func reportFailed(_ moved: [OutboxMessage], of batch: OutboxBatch, reason: String) {
        guard !moved.isEmpty else { return }
        onEvent(.failed(tenant: batch.tenant, moved, reason: reason))
    }

    /// Sends messages of a batch; settles delivered parts and dropped ones at once (the whole batch delivered is
    /// left to the caller to delete), and says what to do with the rest.
    private func send(_ messages: [OutboxMessage], of batch: OutboxBatch, to destination: Destination) async throws
        -> Verdict
    {
        let retryCount = max(0, (messages.map(\.attempts).max() ?? 1) - 1)
        let request = SegmentRequest(
            url: destination.endpoint.batchURL,
            headerFields: [
                "Content-Type": "application/json",
                "Authorization": destination.writeKey.basicAuthorization,
                "User-Agent": LibraryInfo.refinerSegment.userAgent,
                "X-Retry-Count": String(retryCount),
            ],
            body: SegmentBatch.encode(messages.map(\.message), sentAt: Date(), writeKey: destination.writeKey),
            timeout: configuration.requestTimeout
        )
        let response: SegmentResponse
        do {
            response = try await transport.send(request)
        } catch let error as CancellationError {
            throw error
        } catch let error as SegmentTransportError where !error.isRetryable {
            let reason = "transport: " + redacted(error.detail, destination)
            reportFailed(try await outbox.deadLetter(messages, reason: reason), of: batch, reason: reason)
            return .settled
        } catch {
            return .retry(reason: "transport: " + redacted(String(describing: error), destination))
        }
        switch SegmentRetryPolicy.disposition(forStatus: response.statusCode) {
        case .success:
            if messages.count == batch.messages.count { return .accepted }
            try await outbox.settleDelivered(messages)
            onEvent(.delivered(tenant: batch.tenant, messages))
            return .settled
        case .drop:
            // A 400 or 413 of several units: each half on its own, split between units (an identify never goes
            // without its group), so a poisoned unit fails alone.
            if response.statusCode == 400 || response.statusCode == 413, let middle = Self.middleUnitEnd(messages) {
                let first = try await send(Array(messages[..<middle]), of: batch, to: destination)
                guard case .settled = first else { return first }
                return try await send(Array(messages[middle...]), of: batch, to: destination)
            }
            let reason = "HTTP \(response.statusCode): " + redacted(answerText(response), destination)
            reportFailed(try await outbox.deadLetter(messages, reason: reason), of: batch, reason: reason)
            return .settled
        case .retry:
            if let pause = configuration.retryPolicy.retryAfter(response.headerField("Retry-After"), now: Date()) {
                return .pause(pause)
            }
            return .retry(reason: "HTTP \(response.statusCode): " + redacted(answerText(response), destination))
        }
    }

    /// The end of a unit nearest the middle of the messages; `nil` when they are one unit.
    static func middleUnitEnd(_ messages: [OutboxMessage]) -> Int? {
        let ends = messages.indices.dropFirst().filter { messages[$0].unit != messages[$0 - 1].unit }
        return ends.min { abs($0 - messages.count / 2) < abs($1 - messages.count / 2) }
    }

    private func answerText(_ response: SegmentResponse) -> String {
        String(decoding: response.body.prefix(200), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "\r", with: " ")
    }

    /// The text without the write key or its Basic credentials, should a server or a transport echo them.
    private func redacted(_ text: String, _ destination: Destination) -> String {
        let key = destination.writeKey.rawValue
        guard !key.isEmpty else { return text }
        let credentials = String(destination.writeKey.basicAuthorization.dropFirst("Basic ".count))
        return text.replacingOccurrences(of: key, with: "<redacted>")
            .replacingOccurrences(of: credentials, with: "<redacted>")
    }
}

/// The tenants the workers of one `run()` serve, so that no two of them serve one tenant.
private final class ServedTenants: Sendable {
    private let state = NIOLockedValueBox<Set<String>>([])

    /// The tenants served now, for ``PostgresOutbox/acquireTenant(excluding:lease:)``.
    var tenants: [String] { state.withLockedValue { Array($0) } }

    /// Notes a tenant a worker acquired; `false` when another worker serves it.
    func insert(_ tenant: String) -> Bool { state.withLockedValue { $0.insert(tenant).inserted } }

    /// Forgets a tenant once its worker handed it back (or gave up on it).
    func remove(_ tenant: String) { _ = state.withLockedValue { $0.remove(tenant) } }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
