import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// The progress bar: against a file, the share read and delivered, the rate and the time left; on a pipe,
/// the rate only.
@Suite struct SendProgressTests {
    static func progress(at seconds: Locked<Double>) -> SendProgress {
        SendProgress(
            io: ToolIO(
                openInput: { _ in MemorySource([]) }, writeOutput: { _ in }, writeError: { _ in },
                now: { .milliseconds(Int64(seconds.withLock { $0 } * 1000)) }))
    }

    static let message = SegmentMessage(kind: .identify, messageID: "m", json: Array("{}".utf8))

    @Test func aFileShowsTheSharesReadAndDeliveredTheRateAndTheTimeLeft() {
        let clock = Locked(0.0)
        var progress = Self.progress(at: clock)
        clock.withLock { $0 = 10 }
        // Half the file read, 100 messages accepted, 50 delivered in 10 s: a quarter done.
        progress.record(
            .delivered(messageIDs: Array(repeating: "m", count: 50), statusCode: 200), accepted: 100,
            reading: SendProgress.Reading(bytesRead: 500, byteCount: 1000))
        let bar = progress.bar(SendProgress.Reading(bytesRead: 500, byteCount: 1000))
        #expect(bar == "[######======------------] 50% read, 25% delivered, 5 msg/s, 0:30 left")
    }

    @Test func aPipeShowsTheRate() {
        let clock = Locked(0.0)
        var progress = Self.progress(at: clock)
        clock.withLock { $0 = 4 }
        progress.record(
            .delivered(messageIDs: Array(repeating: "m", count: 20), statusCode: 200), accepted: 20,
            reading: SendProgress.Reading(bytesRead: 500, byteCount: nil))
        #expect(progress.bar(SendProgress.Reading(bytesRead: 500, byteCount: nil)) == "5 msg/s")
    }
}
