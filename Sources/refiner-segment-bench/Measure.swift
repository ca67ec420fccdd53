/// One benchmark figure: operations per second, the median of several timed rounds.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    /// The baseline figure this one is compared with, if any.
    var baseline: Double?

    var ratio: Double? { baseline.map { value / $0 } }
}

/// Keeps results alive so the optimizer cannot drop the work that made them.
nonisolated(unsafe) var blackhole = 0

/// Runs `body` (which performs `operations` operations) for `rounds` timed rounds after one warm-up round,
/// and returns the median rate in operations per second.
func measure(rounds: Int = 5, operations: Int, _ body: () -> Void) -> Double {
    body()  // warm-up: caches, lazily built tables, allocator
    let clock = ContinuousClock()
    var rates: [Double] = []
    for _ in 0..<rounds {
        let elapsed = clock.measure(body)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        rates.append(Double(operations) / seconds)
    }
    rates.sort()
    return rates[rates.count / 2]
}

/// Async variant of ``measure(rounds:operations:_:)``.
func measure(rounds: Int = 5, operations: Int, _ body: () async -> Void) async -> Double {
    await body()
    let clock = ContinuousClock()
    var rates: [Double] = []
    for _ in 0..<rounds {
        let start = clock.now
        await body()
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        rates.append(Double(operations) / seconds)
    }
    rates.sort()
    return rates[rates.count / 2]
}

extension [Figure] {
    /// The hand-written baseline's pairs per second, when it was measured in this run.
    var baselinePairs: Double? { first { $0.name == "baseline_pairs" }?.value }
}
