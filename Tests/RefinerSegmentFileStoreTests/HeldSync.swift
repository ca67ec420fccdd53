import Foundation

/// A stand-in for `fsync` that counts its calls and holds every one until the test opens the gate (the
/// group-commit and recording-order tests hold a pass with it).
final class HeldSync: Sendable {
    private let state = NSCondition()
    // Touched only with `state` locked.
    private nonisolated(unsafe) var open = false
    private nonisolated(unsafe) var calls = 0

    /// How many `fsync` calls came so far.
    var count: Int {
        state.lock()
        defer { state.unlock() }
        return calls
    }

    /// The `fsync` stand-in: counts the call and waits for the gate.
    func sync(_ descriptor: Int32) -> Int32 {
        state.lock()
        calls += 1
        while !open { state.wait() }
        state.unlock()
        return 0
    }

    /// Lets every held and later call return.
    func openGate() {
        state.lock()
        open = true
        state.broadcast()
        state.unlock()
    }
}
