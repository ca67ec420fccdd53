import Foundation
import RefinerSegment
import RefinerSegmentTesting

/// A value behind a lock, for the simulation's shared records.
final class Shared<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `withLock`, which holds `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}

/// Virtual time for many sleepers at once: a sleep waits until ``advanceToNextWake()`` moves the clock to
/// its wake time, so a thousand tenants with requests in flight together see the time pass once, not a
/// thousand times.
///
/// Every sleep registered and every wake counts as an event (``events``), so a driver can tell that the
/// code under test has stopped moving.
final class SimulatedClock: Sendable {
    private struct Sleeper {
        var id: Int
        var wake: Duration
        var tag: String?
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Duration = .zero
        var sleepers: [Sleeper] = []
        var nextID = 0
        var events = 0
    }

    let start = Date(timeIntervalSince1970: 1_795_600_800)
    private let state = Shared(State())

    /// The time passed since the start.
    var now: Duration { state.withLock { $0.now } }
    /// Sleeps registered and ended so far.
    var events: Int { state.withLock { $0.events } }
    /// Tasks asleep now.
    var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Whether a sleep with this tag is registered now (it began and has not been woken).
    func isAsleep(_ tag: String) -> Bool { state.withLock { $0.sleepers.contains { $0.tag == tag } } }

    /// The wall clock that moves with this one, for `sentAt` and HTTP-date `Retry-After`.
    var wallClock: @Sendable () -> Date { { self.start.addingTimeInterval(Self.seconds(self.now)) } }

    /// The clock as the library takes it: a `Clock` whose instants are this clock's time since the start.
    var deliveryClock: Adapter { Adapter(base: self) }

    struct Adapter: Clock {
        typealias Instant = VirtualClock.Instant
        let base: SimulatedClock
        var now: Instant { Instant(offset: base.now) }
        var minimumResolution: Duration { .nanoseconds(1) }
        func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
            let left = deadline.offset - base.now
            guard left > .zero else {
                try Task.checkCancellation()
                return
            }
            try await base.sleep(for: left)
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// Sleeps until the clock has moved `duration` on. A `tag` names the sleep for ``isAsleep(_:)``: the
    /// sleep is registered and its tag visible in one step, so a driver that sees the tag knows the sleeper
    /// is waiting for the clock and no longer running.
    func sleep(for duration: Duration, tag: String? = nil) async throws {
        try Task.checkCancellation()
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.events += 1
                    state.sleepers.append(
                        Sleeper(id: id, wake: state.now + duration, tag: tag, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                state.events += 1
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock to the earliest wake time and wakes everyone due then; `false` when nobody sleeps.
    @discardableResult
    func advanceToNextWake() -> Bool {
        let due = state.withLock { state -> [Sleeper]? in
            guard let wake = state.sleepers.map(\.wake).min() else { return nil }
            state.now = max(state.now, wake)
            let due = state.sleepers.filter { $0.wake <= wake }
            state.sleepers.removeAll { $0.wake <= wake }
            state.events += due.count
            return due
        }
        guard let due else { return false }
        for sleeper in due { sleeper.continuation.resume() }
        return true
    }

    /// Moves the clock forward by `duration`, waking sleepers due on the way, in order.
    func advance(by duration: Duration) {
        let target = now + duration
        while let wake = state.withLock({ $0.sleepers.map(\.wake).min() }), wake <= target {
            advanceToNextWake()
        }
        state.withLock { $0.now = max($0.now, target) }
    }
}

/// One shared transport for many simulated tenants: each tenant's endpoint is `https://<tenant>.test`, each
/// request takes ``latency`` of virtual time, and a tenant's answers come from ``behaviour``.
final class SimulatedNetwork: SegmentTransport {
    struct Request: Sendable {
        var tenant: String
        var sentAt: Duration
        var bytes: Int
        var retryCount: Int
    }

    /// What a tenant's endpoint answers to its n-th request (0-based); `nil` holds the request until
    /// ``release(_:)``.
    typealias Behaviour = @Sendable (_ tenant: String, _ attempt: Int) -> SegmentResponse?

    let clock: SimulatedClock
    let latency: Duration
    private let behaviour: Behaviour
    private let log = Shared<(requests: [Request], attempts: [String: Int], completed: Int, answered: [String: Int])>(
        ([], [:], 0, [:]))

    init(clock: SimulatedClock, latency: Duration = .milliseconds(20), behaviour: @escaping Behaviour = { _, _ in nil })
    {
        self.clock = clock
        self.latency = latency
        self.behaviour = behaviour
    }

    static func endpoint(_ tenant: String) -> SegmentEndpoint {
        SegmentEndpoint(baseURL: URL(string: "https://\(tenant).test")!)
    }

    static let ok = SegmentResponse(statusCode: 200, body: Array("{}".utf8))

    /// Every request so far, in the order they reached the network.
    var requests: [Request] { log.withLock { $0.requests } }
    /// Requests answered so far.
    var completed: Int { log.withLock { $0.completed } }
    var requestCount: Int { log.withLock { $0.requests.count } }

    func requests(of tenant: String) -> [Request] { requests.filter { $0.tenant == tenant } }

    /// The tenant's requests that reached the network and have no answer yet.
    func outstanding(_ tenant: String) -> Int {
        log.withLock { ($0.attempts[tenant] ?? 0) - ($0.answered[tenant] ?? 0) }
    }

    /// Whether a request of the tenant is on the network now, waiting for the clock (its latency) or for
    /// ``release(_:)``: unlike ``outstanding(_:)``, which counts a request from the moment it arrives,
    /// this holds only once the request's task has nothing left to do but wait.
    func isOnTheWire(_ tenant: String) -> Bool {
        clock.isAsleep(Self.wireTag(tenant)) || held.withLock { $0.waiting.values.contains { $0.tenant == tenant } }
    }

    private static func wireTag(_ tenant: String) -> String { "network \(tenant)" }

    /// The tenant's requests that reached the network so far.
    func requestCount(of tenant: String) -> Int { log.withLock { $0.attempts[tenant] ?? 0 } }

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        let tenant = String(request.url.host?.split(separator: ".").first ?? "")
        let attempt = log.withLock { log -> Int in
            let attempt = log.attempts[tenant, default: 0]
            log.attempts[tenant] = attempt + 1
            log.requests.append(
                Request(
                    tenant: tenant, sentAt: clock.now, bytes: request.body.count,
                    retryCount: Int(request.headerField("X-Retry-Count") ?? "") ?? -1))
            return attempt
        }
        guard let answer = behaviour(tenant, attempt) else {
            do {
                try await hold(tenant)
            } catch {
                log.withLock { $0.answered[tenant, default: 0] += 1 }
                throw error
            }
            log.withLock {
                $0.completed += 1
                $0.answered[tenant, default: 0] += 1
            }
            return Self.ok
        }
        do {
            try await clock.sleep(for: latency, tag: Self.wireTag(tenant))
        } catch {
            log.withLock { $0.answered[tenant, default: 0] += 1 }
            throw error
        }
        log.withLock {
            $0.completed += 1
            $0.answered[tenant, default: 0] += 1
        }
        return answer
    }

    private let held = Shared<
        (next: Int, waiting: [Int: (tenant: String, continuation: CheckedContinuation<Void, any Error>)])
    >(
        (0, [:]))

    /// Waits, outside virtual time, until ``release(_:)`` lets the tenant's requests through (or the task
    /// is cancelled).
    private func hold(_ tenant: String) async throws {
        let id = held.withLock { held -> Int in
            held.next += 1
            return held.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = held.withLock { held -> Bool in
                    if Task.isCancelled { return true }
                    held.waiting[id] = (tenant, continuation)
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            held.withLock { $0.waiting.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Answers the tenant's held requests with 200.
    func release(_ tenant: String) {
        let waiting = held.withLock { held -> [CheckedContinuation<Void, any Error>] in
            let ids = held.waiting.filter { $0.value.tenant == tenant }.map(\.key)
            return ids.compactMap { held.waiting.removeValue(forKey: $0)?.continuation }
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Requests held now.
    var heldCount: Int { held.withLock { $0.waiting.count } }
}

/// Moves virtual time forward whenever the group has stopped moving, until a condition holds.
struct Driver {
    let clock: SimulatedClock
    let network: SimulatedNetwork
    let group: SegmentPipelineGroup
    /// Tenants whose counters count as movement too (a busy tenant's work between two requests, such as
    /// a feeder filling its queue, shows nowhere else).
    var watched: [String] = []
    /// What must hold, besides nothing moving, before virtual time may pass: a scene that knows what a
    /// quiet moment looks like (every busy tenant asking for a slot) says so here, so that a tenant still
    /// at work in real time on a loaded machine is never mistaken for an idle one.
    var ready: @Sendable () async -> Bool = { true }

    private struct Signature: Equatable {
        var events: Int
        var requests: Int
        var completed: Int
        var statistics: SegmentPipelineGroup.Statistics
        var watched: [SegmentPipeline.Counters?]
    }

    private func signature() async -> Signature {
        var counters: [SegmentPipeline.Counters?] = []
        for tenant in watched { counters.append(await group.status(of: tenant)?.counters) }
        return Signature(
            events: clock.events, requests: network.requestCount, completed: network.completed,
            statistics: await group.statistics, watched: counters)
    }

    /// Waits until nothing visible changes for a good number of scheduling turns: every task is asleep on
    /// the clock, waiting for a slot, or idle. (A task still busy only makes the simulation slower than
    /// real, never faster: its next step happens at a later virtual time.)
    func settle() async {
        var last = await signature()
        var stable = 0
        var turns = 0
        // Readiness is waited for a long while, not for ever: a scene that cannot become ready still ends.
        while true {
            if stable >= 100 {
                guard turns < 1_000_000 else { break }
                if await ready() { break }
            }
            turns += 1
            await Task.yield()
            let now = await signature()
            if now == last {
                stable += 1
            } else {
                stable = 0
                last = now
            }
        }
    }

    /// Settles, then advances to the next wake, until `done` holds or nobody sleeps; `false` if it gave up.
    @discardableResult
    func run(until done: () async -> Bool) async -> Bool {
        var idle = 0
        while true {
            await settle()
            if await done() { return true }
            if clock.advanceToNextWake() {
                idle = 0
            } else {
                // Nobody sleeps: what is left to happen happens without the clock (a task finishing).
                idle += 1
                if idle > 20 { return await done() }
            }
        }
    }

    /// Runs until the clock reaches `time`.
    func run(to time: Duration) async {
        await run { clock.now >= time }
        if clock.now < time { clock.advance(by: time - clock.now) }
    }
}

enum TestMessages {
    /// A message of about `bytes` bytes of JSON.
    static func message(_ id: String, bytes: Int = 200) -> SegmentMessage {
        let prefix = #"{"type":"identify","userId":"u","messageId":"\#(id)","traits":{"pad":""#
        let padding = String(repeating: "x", count: max(0, bytes - prefix.utf8.count - 3))
        return SegmentMessage(kind: .identify, messageID: id, json: Array((prefix + padding + #""}}"#).utf8))
    }

    static func units(_ count: Int, tenant: String, bytes: Int = 200) -> [[SegmentMessage]] {
        (0..<count).map { [message("\(tenant)-\($0)", bytes: bytes)] }
    }
}

/// Outcomes gathered from a group's stream, as they come.
final class OutcomeLog: Sendable {
    private let outcomes = Shared<[SegmentTenantOutcome]>([])

    var all: [SegmentTenantOutcome] { outcomes.current }

    func collect(_ stream: AsyncStream<SegmentTenantOutcome>) async {
        for await outcome in stream { outcomes.withLock { $0.append(outcome) } }
    }

    func messages(of tenant: String, where matches: (SegmentOutcome) -> Bool) -> Int {
        all.filter { $0.tenant == tenant && matches($0.outcome) }.reduce(0) { $0 + $1.outcome.count }
    }

    func delivered(_ tenant: String) -> Int {
        messages(of: tenant) { if case .delivered = $0 { true } else { false } }
    }

    func failed(_ tenant: String) -> Int {
        messages(of: tenant) { if case .failed = $0 { true } else { false } }
    }
}
