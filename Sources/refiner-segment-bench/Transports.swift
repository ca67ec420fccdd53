import Foundation
import RefinerSegment

/// A counter shared with the pipeline's tasks.
final class AtomicCounter: @unchecked Sendable {
    // @unchecked: `count` is only touched with `lock` held (Synchronization's Atomic needs macOS 15).
    private let lock = NSLock()
    private var count = 0

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }

    func add(_ amount: Int) {
        lock.lock()
        count += amount
        lock.unlock()
    }
}

/// A transport that answers 200 at once: what the pipeline costs on its own.
struct InstantTransport: SegmentTransport {
    let bytes = AtomicCounter()
    let requests = AtomicCounter()

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        bytes.add(request.body.count)
        requests.add(1)
        return SegmentResponse(statusCode: 200)
    }
}

/// A transport whose network is down: every request fails.
struct DownTransport: SegmentTransport {
    struct Down: Error {}

    func send(_ request: SegmentRequest) async throws -> SegmentResponse {
        throw Down()
    }
}

/// The process's peak resident set size so far, in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if canImport(Darwin)
    getrusage(RUSAGE_SELF, &usage)
    #else
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #endif
    #if canImport(Darwin)
    return Int(usage.ru_maxrss)  // bytes on Darwin
    #else
    return Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
    #endif
}

/// Records every unit, one `record` call each, as a host's request handlers would; then flushes.
///
/// A nonisolated async function, so it runs on the concurrent pool like a server's tasks do, not on the
/// main actor that top-level code runs on (every hop from there is a thread switch).
func recordAll(_ units: [[SegmentMessage]], into pipeline: SegmentPipeline) async {
    for unit in units { try? await pipeline.record(unit) }
    await pipeline.flush()
}

/// Records the units `perCall` at a time with `record(contentsOf:)`, as a backfill would; then flushes.
func recordAll(_ units: [[SegmentMessage]], perCall: Int, into pipeline: SegmentPipeline) async {
    var start = 0
    while start < units.count {
        let end = min(start + perCall, units.count)
        try? await pipeline.record(contentsOf: Array(units[start..<end]))
        start = end
    }
    await pipeline.flush()
}

/// Records every pair from `callers` tasks at once, one pair a call, into a pipeline on the in-memory store;
/// then flushes. The shape of `durable_pipeline_pairs` without the disk.
func recordConcurrently(_ units: [[SegmentMessage]], callers: Int, into pipeline: SegmentPipeline) async {
    await withTaskGroup(of: Void.self) { group in
        for caller in 0..<callers {
            group.addTask {
                for index in stride(from: caller, to: units.count, by: callers) {
                    try? await pipeline.record(units[index])
                }
            }
        }
    }
    await pipeline.flush()
}

/// The resident set size now, in bytes (Linux: /proc/self/statm; elsewhere the peak so far).
func residentBytes() -> Int {
    #if os(Linux)
    if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
        let fields = statm.split(separator: " ")
        if fields.count > 1, let pages = Int(fields[1]) { return pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
    }
    #endif
    return peakResidentBytes()
}

/// Builds `count` pairs from `response` with fresh ids and offers each to a pipeline whose queue fails fast
/// when full; returns how many were refused. Only the queue keeps what it accepted.
func offerFresh(
    _ count: Int,
    startingAt start: Int,
    of response: SurveyResponse,
    builder: SegmentCallBuilder,
    to pipeline: SegmentPipeline
) async -> Int {
    var variant = response
    var refused = 0
    for index in start..<(start + count) {
        variant.id = "down_\(index)"
        guard let messages = try? builder.process(variant, profile: CollectedProfile()).messages else { continue }
        do { try await pipeline.record(messages) } catch { refused += 1 }
    }
    return refused
}
