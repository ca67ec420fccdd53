import Foundation
import RefinerSegment
import RefinerSegmentFileStore

// The file store's figures: the pipeline on a durable store beside the one in memory, and reopening a
// large backlog (time and memory).

/// A fresh directory for one measurement, under the system's temporary directory.
func scratchDirectory(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("refiner-segment-bench-\(getpid())-\(name)")
}

/// Records every pair through a pipeline on a file store (fsync before each `record` returns), from
/// `callers` tasks at once, `perCall` pairs to a `record` call (1: as request handlers would make them);
/// then flushes.
func recordDurably(_ pairs: [[SegmentMessage]], callers: Int, perCall: Int, into directory: URL) async -> Int {
    try? FileManager.default.removeItem(at: directory)
    defer { try? FileManager.default.removeItem(at: directory) }
    // BENCH_COMMIT_DELAY=0: without the sync thread's commit delay, to see what it brings.
    let commitDelay = ProcessInfo.processInfo.environment["BENCH_COMMIT_DELAY"] != "0"
    // BENCH_NO_FSYNC=1: no fsync at all (not durable), to see what the store costs without the disk.
    let noSync = ProcessInfo.processInfo.environment["BENCH_NO_FSYNC"] == "1"
    @Sendable func sync(_ descriptor: Int32) -> Int32 { noSync ? 0 : fsync(descriptor) }
    guard
        let store = try? FileMessageStore(
            directory: directory, configuration: .init(maximumBytes: 1 << 30),
            fsync: sync,
            commitDelay: commitDelay)
    else {
        progress("  the file store could not be opened in \(directory.path)")
        return 0
    }
    let transport = InstantTransport()
    let delivered = try? await SegmentPipeline.withPipeline(
        writeKey: WriteKey("bench"), transport: transport, store: store
    ) { pipeline in
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    for start in stride(from: caller * perCall, to: pairs.count, by: callers * perCall) {
                        if perCall == 1 {
                            try? await pipeline.record(pairs[start])
                        } else {
                            try? await pipeline.record(
                                contentsOf: Array(pairs[start..<min(start + perCall, pairs.count)]))
                        }
                    }
                }
            }
        }
        await pipeline.flush()
        return await pipeline.counters.delivered
    }
    blackhole &+= transport.bytes.value
    let passes = store.syncPasses
    progress(
        "  \(store.syncCount) fsyncs in \(passes.count) passes (\(pairs.count / max(passes.count, 1)) pairs and "
            + "\(String(format: "%.2f", milliseconds(passes.syncTime) / Double(max(passes.count, 1)))) ms of fsync each) for "
            + "\(pairs.count) pairs, \(perCall) to a call from \(callers) callers")
    return delivered ?? 0
}

/// A line of /proc/self/status (`VmRSS`, `VmHWM`) in bytes; 0 where there is none.
func procStatus(_ field: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let number = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return number * 1024
    }
    return 0
}

/// Writes a backlog of about `bytes` of pairs into a file store in `directory` (no fsync: this is set-up),
/// then closes it; returns how many messages it holds.
func buildBacklog(bytes: Int, in directory: URL, from pairs: [[SegmentMessage]]) async throws -> Int {
    try? FileManager.default.removeItem(at: directory)
    let store = try FileMessageStore(
        directory: directory, configuration: .init(sync: .operatingSystem, maximumBytes: bytes + (64 << 20)))
    var messages = 0
    while try await store.usage(tenant: "default").storedBytes < bytes {
        let accepted = try await store.append(pairs, tenant: "default")
        guard accepted > 0 else { break }
        messages += pairs.prefix(accepted).reduce(0) { $0 + $1.count }
    }
    return messages
}

/// The CPU time this process has used, user and system, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    #if canImport(Darwin)
    getrusage(RUSAGE_SELF, &usage)
    #else
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #endif
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    return user + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// The floor of `durable_pipeline_pairs`' shape on this machine: `callers` tasks, each suspending once a
/// "pair" until a sync thread has written (one write) and fsynced a group's bytes (a pair's 1.6 KB for each
/// caller waiting) and resumed them all; no pipeline, no store, no encoding, no delivery. What any group commit
/// made of Swift tasks costs here, so the durable figure can be held against it.
func groupCommitFloor(pairs: Int, callers: Int, into directory: URL) async -> Int {
    try? FileManager.default.removeItem(at: directory)
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let descriptor = open(directory.appendingPathComponent("floor").path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard descriptor >= 0 else { return 0 }
    defer { close(descriptor) }
    let gate = FloorGate()
    let noSync = ProcessInfo.processInfo.environment["BENCH_NO_FSYNC"] == "1"
    let thread = Thread {
        var bytes = [UInt8](repeating: 0x61, count: 1_600 * callers)
        var passes = 0
        var syncTime = Duration.zero
        while let waiting = gate.next() {
            // One write for the group, as the store makes.
            _ = bytes.withUnsafeMutableBytes { write(descriptor, $0.baseAddress, 1_600 * waiting.count) }
            let start = ContinuousClock.now
            if !noSync { _ = fsync(descriptor) }
            passes += 1
            syncTime += ContinuousClock.now - start
            for continuation in waiting { continuation.resume() }
        }
        gate.finish(passes: passes, syncTime: syncTime)
    }
    thread.start()
    await withTaskGroup(of: Void.self) { group in
        for caller in 0..<callers {
            group.addTask {
                for _ in stride(from: caller, to: pairs, by: callers) {
                    await withCheckedContinuation { gate.add($0) }
                }
            }
        }
    }
    gate.stop()
    let (count, syncTime) = gate.passes()
    progress(
        "  \(count) passes (\(pairs / max(count, 1)) pairs and "
            + "\(String(format: "%.2f", milliseconds(syncTime) / Double(max(count, 1)))) ms "
            + "of fsync each) for \(pairs) pairs from \(callers) callers")
    return pairs
}

/// A duration in milliseconds.
func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
}

/// The callers waiting for the floor's next sync, and what the sync thread counted, behind a condition
/// variable.
final class FloorGate: @unchecked Sendable {
    // @unchecked: `waiting`, `stopped` and `finished` are touched only with `condition` locked.
    private let condition = NSCondition()
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var stopped = false
    private var finished: (passes: Int, syncTime: Duration)?

    func add(_ continuation: CheckedContinuation<Void, Never>) {
        condition.withLock {
            waiting.append(continuation)
            condition.signal()
        }
    }

    /// Everyone waiting, once there is someone; `nil` once stopped.
    func next() -> [CheckedContinuation<Void, Never>]? {
        condition.withLock {
            while waiting.isEmpty && !stopped { condition.wait() }
            guard !stopped else { return nil }
            defer { waiting = [] }
            return waiting
        }
    }

    func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    /// The sync thread is done: its passes and their fsyncs' time in all.
    func finish(passes: Int, syncTime: Duration) {
        condition.withLock {
            finished = (passes, syncTime)
            condition.broadcast()
        }
    }

    /// Waits for ``finish(passes:syncTime:)``.
    func passes() -> (Int, Duration) {
        condition.withLock {
            while finished == nil { condition.wait() }
            return finished ?? (0, .zero)
        }
    }
}
