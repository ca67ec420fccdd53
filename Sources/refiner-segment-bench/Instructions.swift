import Foundation

// The instruction mode: `refiner-segment-bench --instructions` counts the instructions each library hot path
// executes per operation, a figure that does not move with the machine's load as seconds do.
//
// This machine has no hardware counters for `perf stat`, so the count comes from valgrind's callgrind. Each hot
// path runs in a child process of this program under callgrind twice, once with `repeats` and once with
// `2 * repeats` repetitions of its work; the difference between the two totals is the work of `repeats`
// repetitions alone, without the program's start, the corpus loading and the lazily built tables, and dividing
// it by the operations done gives instructions per operation.
//
// A counted workload is synchronous and runs on the main thread: valgrind 3.19 on this machine crashes when a
// Swift concurrency worker thread starts, so asynchronous paths (render through the tool, the pipeline) are
// timed only.

/// A hot path the instruction mode counts: `run(repeats)` performs `operationsPerRepeat * repeats` operations.
struct CountedWorkload {
    /// The figure's name, as in the timed report (`trait_keys`).
    var name: String
    /// What one operation is, singular (`key`, `pair`).
    var operation: String
    var operationsPerRepeat: Int
    /// Repetitions per counted run, sized so a run under callgrind takes seconds, not minutes.
    var repeats: Int
    var run: (_ repeats: Int) -> Void
}

/// `--count-child=NAME --repeats=R`: this process is a child of the instruction mode and runs one workload.
let countedChild: (name: String, repeats: Int)? = {
    let arguments = CommandLine.arguments
    guard let name = arguments.first(where: { $0.hasPrefix("--count-child=") })?.dropFirst("--count-child=".count),
        let repeats = arguments.first(where: { $0.hasPrefix("--repeats=") }).flatMap({ Int($0.dropFirst(10)) })
    else { return nil }
    return (String(name), repeats)
}()

/// Whether this run counts instructions instead of timing.
let countsInstructions = CommandLine.arguments.contains("--instructions")

/// The instruction counts measured in this run, reported after the timed figures.
nonisolated(unsafe) var instructionFigures: [(name: String, operation: String, perOperation: Double)] = []

/// Handles a workload in the instruction mode: in a child, runs it and exits; in the parent, counts it.
/// Returns whether the caller should skip its timed measurement.
func countInstructions(_ workload: CountedWorkload) -> Bool {
    if let child = countedChild {
        if child.name == workload.name {
            workload.run(child.repeats)
            progress("(checksum \(blackhole))")
            exit(0)
        }
        return true
    }
    guard countsInstructions else { return false }
    progress("counting instructions of \(workload.name) under callgrind...")
    guard let once = callgrindTotal(workload.name, repeats: workload.repeats),
        let twice = callgrindTotal(workload.name, repeats: 2 * workload.repeats)
    else {
        progress("  could not run valgrind --tool=callgrind; is valgrind installed?")
        return true
    }
    let operations = Double(workload.operationsPerRepeat * workload.repeats)
    instructionFigures.append((workload.name, workload.operation, Double(twice - once) / operations))
    return true
}

/// The instructions a child run of one workload executes in all, as callgrind counts them.
private func callgrindTotal(_ name: String, repeats: Int) -> Int? {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    child.arguments = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        CommandLine.arguments[0], "--count-child=\(name)", "--repeats=\(repeats)", "--no-baseline",
    ]
    let errors = Pipe()
    child.standardError = errors
    child.standardOutput = FileHandle.nullDevice
    guard (try? child.run()) != nil else { return nil }
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    // `==1234== Collected : 18990824183`
    guard child.terminationStatus == 0,
        let line = text.split(separator: "\n").last(where: { $0.contains("Collected :") }),
        let total = line.split(separator: " ").last.flatMap({ Int($0) })
    else { return nil }
    return total
}
