import Foundation
import RefinerSegment

/// What `send` shows on stderr while it runs: a line per event in a log, a bar redrawn in place on a terminal.
///
/// The bar shows how far the run is: when the input is a file of known size, the share of it read (`=`)
/// and, within that, the share delivered (`#`, read share times the delivered share of what was accepted),
/// with the rate in messages per second and an estimate of the time left; on a pipe, where the end is
/// unknown, the rate.
struct SendProgress {
    let io: ToolIO
    private(set) var accepted = 0
    private(set) var delivered = 0
    private(set) var failed = 0
    private(set) var retries = 0
    private let started: Duration

    init(io: ToolIO) {
        self.io = io
        self.started = io.now()
    }

    /// What was read so far, for the bar.
    struct Reading {
        var bytesRead: Int
        var byteCount: Int?
    }

    mutating func record(_ outcome: SegmentOutcome, accepted: Int, reading: Reading) {
        self.accepted = accepted
        switch outcome {
        case .delivered(let messageIDs, _):
            delivered += messageIDs.count
            line("delivered \(messageIDs.count) messages", reading)
        case .retrying(let messageIDs, let retryCount, let delay, let reason):
            retries += 1
            line("retry \(retryCount) of \(messageIDs.count) messages in \(Self.seconds(delay)): \(reason)", reading)
        case .failed(let messages, let reason):
            failed += messages.count
            line("failed \(messages.count) messages: \(reason)", reading)
        case .handedBack(let messages):
            line("\(messages.count) messages not sent before the pipeline stopped", reading)
        }
    }

    /// Ends the bar's line on a terminal, so the summary starts on a line of its own.
    func finish() {
        if io.errorIsTerminal { io.writeError("\n") }
    }

    /// A plain line for a log, or the bar redrawn in place on a terminal.
    private func line(_ event: String, _ reading: Reading) {
        let totals = "accepted \(accepted), delivered \(delivered), retried \(retries), failed \(failed)"
        guard io.errorIsTerminal else {
            io.writeError("refiner-segment: \(event) (\(totals))\n")
            return
        }
        io.writeError("\r\u{1B}[2K" + bar(reading) + " " + totals)
    }

    /// `[####====------] 40% read, 25% delivered, 1200 msg/s, 0:07 left` for a file; `1200 msg/s` on a pipe.
    func bar(_ reading: Reading) -> String {
        let elapsed = (io.now() - started).seconds
        let rate = elapsed > 0 ? Double(delivered) / elapsed : 0
        let rateText = "\(Int(rate.rounded())) msg/s"
        guard let size = reading.byteCount, size > 0 else { return rateText }
        let readShare = min(1, Double(reading.bytesRead) / Double(size))
        let deliveredShare = accepted == 0 ? 0 : readShare * Double(delivered) / Double(accepted)
        let width = 24
        let hashes = Int((deliveredShare * Double(width)).rounded(.down))
        let equals = max(0, Int((readShare * Double(width)).rounded(.down)) - hashes)
        let bar =
            String(repeating: "#", count: hashes) + String(repeating: "=", count: equals)
            + String(repeating: "-", count: width - hashes - equals)
        var text = "[\(bar)] \(Int(readShare * 100))% read, \(Int(deliveredShare * 100))% delivered, \(rateText)"
        if deliveredShare > 0, deliveredShare < 1, elapsed > 0 {
            let left = Int((elapsed * (1 - deliveredShare) / deliveredShare).rounded())
            text += ", \(left / 60):\(String(format: "%02d", left % 60)) left"
        }
        return text
    }

    static func seconds(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds < 10 ? String(format: "%.1f s", seconds) : "\(Int(seconds.rounded())) s"
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
