import Foundation
import RefinerSegment

/// The process's stop signals (SIGINT, SIGTERM, SIGHUP) as a stream, for `send`'s orderly stop.
///
/// While the stream is listened to, the signals' default action (terminate at once) is off and a dispatch
/// source reports each of them instead; what a second or third signal means is `send`'s decision
/// (``StopPolicy``). SIGPIPE is ignored meanwhile (a reader of standard error that went away makes writes
/// fail, not the process die), and so is SIGXFSZ (a file size limit makes the failed file's write fail,
/// which `send` reports, instead of killing the process with the messages in memory). Dropping the stream
/// restores the default actions.
enum SignalListener {
    /// Whether one of the signals listened for has arrived in this process (read by the input, which then
    /// stops waiting for more).
    static var received: Bool { flag.withLock { $0 } }

    private static let flag = Locked(false)

    static func interruptions(for signals: [Int32]) -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let sources = Locked(SignalSources())
            let ignored = [SIGPIPE, SIGXFSZ]
            for number in ignored { signal(number, SIG_IGN) }
            for number in signals {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    flag.withLock { $0 = true }
                    continuation.yield(number)
                }
                source.resume()
                sources.withLock { $0.all.append(source) }
            }
            continuation.onTermination = { _ in
                for source in sources.withLock({ $0.all }) { source.cancel() }
                for number in signals + ignored { signal(number, SIG_DFL) }
            }
        }
    }

    /// The dispatch sources listening. `@unchecked Sendable`: a dispatch source may be cancelled from any
    /// thread, and the array is only read or changed inside the `Locked` that holds it.
    private struct SignalSources: @unchecked Sendable {
        var all: [any DispatchSourceSignal] = []
    }

    /// The signal's name, for messages.
    static func name(of number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(number)"
        }
    }
}

/// What a stop signal means, given the ones before it: the decision, apart from the waiting.
///
/// - The first asks for an orderly stop: stop reading, deliver for a short grace, write every undelivered
///   message to the failed file, exit 128 + its number.
/// - Another within ``sameStopWindow`` of the first is the same stop: `timeout -s INT` signals the process
///   and then its group, a terminal's Ctrl-C reaches every process of the foreground group, systemd sends
///   SIGTERM and then SIGHUP. It is ignored.
/// - A later one cuts the grace short: the failed file is written at once with every message not yet
///   delivered, and the process exits with the first signal's status.
/// - One more after that (the failed file could not be written promptly: a full disk, a lock held) exits at
///   once with ``RefinerSegmentTool/abandoned``.
struct StopPolicy {
    /// How close together two signals are one stop.
    static let sameStopWindow: Duration = .milliseconds(500)

    enum Action: Equatable {
        case stop, ignore, hurry, abandon
    }

    /// The first signal and when it came.
    private(set) var first: (signal: Int32, at: Duration)?
    private var hurried = false

    mutating func receive(_ signal: Int32, at now: Duration) -> Action {
        guard let first else {
            self.first = (signal, now)
            return .stop
        }
        if now - first.at < Self.sameStopWindow { return .ignore }
        if !hurried {
            hurried = true
            return .hurry
        }
        return .abandon
    }
}
