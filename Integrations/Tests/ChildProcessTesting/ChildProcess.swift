import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A built executable run by a test, without Foundation's `Process`: started with `posix_spawn`, its exit seen
/// by a blocking `waitid` on a thread of its own, its output read by threads of their own.
///
/// Foundation's `Process` on Linux learns of a child's exit through one shared manager thread: a socket pair
/// whose far end only the child should hold, watched by CFSocket's `select` thread, whose end of file runs a
/// callback on that manager's run loop. A fault anywhere on that path (an end inherited by a child another test
/// spawned at the same moment, a descriptor another thread closes twice, the manager's run loop blocked) means
/// no termination handler and no `isRunning == false` ever again, for every process of the test run at once:
/// the hang described in `Docs/Testing.md`. Here nothing but the kernel tells a child's exit: `waitid` returns
/// when the child exits, whatever the rest of the process does with descriptors, run loops or signals.
///
/// Descriptors: the pipes are created close-on-exec, so no other child inherits them; the child gets its
/// standard input, output and error and nothing else (`posix_spawn_file_actions_addclosefrom_np` where the C
/// library has it, `POSIX_SPAWN_CLOEXEC_DEFAULT` on Darwin).
package final class ChildProcess: Sendable {
    /// Where one of the child's standard streams goes.
    package enum Output: Sendable {
        /// `/dev/null`.
        case discard
        /// Appended to the file (created when missing).
        case append(URL)
        /// Read through a pipe: `handler` gets each chunk as it is read, on the stream's reader thread, and an
        /// empty chunk never. The child's end of output is part of ``wait(within:)``.
        case pipe(_ handler: @Sendable (_ chunk: [UInt8]) -> Void)
    }

    /// How the child ended.
    package enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal killed it.
        case signalled(Int32)

        /// As Foundation's `terminationStatus`: the exit status, or the number of the signal that killed it.
        package var status: Int32 {
            switch self {
            case .exited(let status), .signalled(let status): status
            }
        }

        package var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// A child that could not be started.
    package struct SpawnError: Error, CustomStringConvertible {
        /// What could not be done, and the `errno` text.
        package var description: String
    }

    private struct State {
        var termination: Termination?
        /// Pipes whose reader has not yet seen end of file.
        var openReaders = 0
        var waiters: [Int: CheckedContinuation<Termination?, Never>] = [:]
        var cancelled: Set<Int> = []
        var nextWaiter = 0

        /// The termination once the child has exited and its output is read to the end.
        var result: Termination? { openReaders == 0 ? termination : nil }
    }

    /// The child's process id: only signalled through ``send(_:)``, which never reaches a reused id.
    package let processIdentifier: pid_t
    /// The executable's file name and the arguments, for messages.
    package let commandLine: String
    private let state: NIOLockedValueBox<State>

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: The child's whole environment; `nil` passes this process's own.
    ///   - standardOutput, standardError: Where the streams go; standard input is always `/dev/null`.
    /// - Throws: ``SpawnError`` when a file cannot be opened, a pipe made, or the executable started.
    package init(
        _ executable: URL,
        arguments: [String] = [],
        environment: [String: String]? = nil,
        standardOutput: Output = .discard,
        standardError: Output = .discard
    ) throws {
        commandLine = ([executable.lastPathComponent] + arguments).joined(separator: " ")
        let state = NIOLockedValueBox(State())
        self.state = state

        // Descriptors of this process to close once the child has its copies; the pipes' read ends.
        var parentEnds: [Int32] = []
        var readers: [(fd: Int32, handler: @Sendable ([UInt8]) -> Void)] = []
        defer { for fd in parentEnds { close(fd) } }
        func childEnd(_ output: Output) throws -> Int32 {
            switch output {
            case .discard:
                let fd = try Self.open("/dev/null", O_WRONLY)
                parentEnds.append(fd)
                return fd
            case .append(let url):
                let fd = try Self.open(url.path, O_WRONLY | O_APPEND | O_CREAT)
                parentEnds.append(fd)
                return fd
            case .pipe(let handler):
                let (read, write) = try Self.makePipe()
                parentEnds.append(write)
                readers.append((read, handler))
                return write
            }
        }
        do {
            let input = try Self.open("/dev/null", O_RDONLY)
            parentEnds.append(input)
            let output = try childEnd(standardOutput)
            let error = try childEnd(standardError)
            processIdentifier = try Self.spawn(
                executable.path, arguments: arguments, environment: environment, streams: [input, output, error])
        } catch {
            for reader in readers { close(reader.fd) }
            throw error
        }

        state.withLockedValue { $0.openReaders = readers.count }
        for reader in readers {
            let thread = Thread { Self.drain(reader.fd, into: reader.handler, state: state) }
            thread.name = "child \(processIdentifier) output"
            thread.start()
        }
        let pid = processIdentifier
        let watcher = Thread { Self.watch(pid, state: state) }
        watcher.name = "child \(processIdentifier) exit"
        watcher.start()
    }

    deinit {
        // A test that failed half-way leaves no process behind.
        send(SIGKILL)
    }

    /// How the child ended, once it has exited (its output may still be being read); `nil` while it runs.
    package var termination: Termination? { state.withLockedValue { $0.termination } }

    /// Whether the child has exited.
    package var hasExited: Bool { termination != nil }

    /// Sends `signal` to the child; nothing once it has exited, so its process id, which the system may give to
    /// another process once the child is reaped, is never signalled.
    package func send(_ signal: Int32) {
        state.withLockedValue { state in
            // The watcher reaps the child under this lock: while `termination` is nil the id is still ours.
            if state.termination == nil { _ = kill(processIdentifier, signal) }
        }
    }

    /// Waits until the child has exited and its piped output is read to the end; `nil` when `bound` passes
    /// first (the child is left running: ``send(_:)`` `SIGKILL`, then wait again) or the task is cancelled.
    package func wait(within bound: Duration) async -> Termination? {
        await withTaskGroup(of: Termination?.self) { group in
            group.addTask { await self.waitUntilDone() }
            group.addTask {
                try? await Task.sleep(for: bound)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Waits as ``wait(within:)`` does; when `bound` passes, kills the child and waits `afterKill` more for
    /// it to go, so that the caller gets a termination or a description of what hung, never a hang.
    ///
    /// - Returns: How the child ended, or a sentence saying that it outlived `bound` (and was killed).
    package func waitOrKill(within bound: Duration, afterKill: Duration = .seconds(30)) async -> Result<
        Termination, TimedOut
    > {
        if let termination = await wait(within: bound) { return .success(termination) }
        send(SIGKILL)
        let afterwards = await wait(within: afterKill)
        return .failure(TimedOut(commandLine: commandLine, bound: bound, afterKill: afterwards))
    }

    /// A child that ran past its bound.
    package struct TimedOut: Error, CustomStringConvertible {
        /// The child's command line.
        package var commandLine: String
        /// How long it was given.
        package var bound: Duration
        /// How it ended once killed, or `nil` when even that did not come in time.
        package var afterKill: Termination?

        package var description: String {
            let end =
                afterKill.map { "then, killed, \($0)" }
                ?? "and had not ended (or its output stayed open) a while after SIGKILL"
            return "\(commandLine) ran longer than \(bound) \(end)"
        }
    }

    private func waitUntilDone() async -> Termination? {
        let id = state.withLockedValue { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Termination?, Never>) in
                let now: Termination?? = state.withLockedValue { state in
                    if let result = state.result { return .some(result) }
                    if state.cancelled.remove(id) != nil { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return CheckedContinuation<Termination?, Never>?.none
                }
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// The result and the waiters to resume with it (outside the lock), once the child has exited and its
    /// output has ended.
    private typealias Finished = (Termination, [CheckedContinuation<Termination?, Never>])

    private static func finishIfDone(_ state: inout State) -> Finished? {
        guard let result = state.result, !state.waiters.isEmpty else { return nil }
        let waiters = Array(state.waiters.values)
        state.waiters = [:]
        return (result, waiters)
    }

    /// The exit watcher: waits for the child's exit without reaping it, then reaps it under the lock that
    /// ``send(_:)`` takes, so that no signal goes to its id after the system may have reused it.
    private static func watch(_ pid: pid_t, state: NIOLockedValueBox<State>) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        let done = state.withLockedValue { state -> Finished? in
            var status: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &status, 0) } while reaped == -1 && errno == EINTR
            // -1 (ECHILD) only if someone else reaped our child: say so instead of inventing a status.
            state.termination =
                reaped == pid
                ? (Self.signalled(status) ? .signalled(status & 0x7f) : .exited((status >> 8) & 0xff))
                : .exited(-1)
            return finishIfDone(&state)
        }
        if let (result, waiters) = done { for waiter in waiters { waiter.resume(returning: result) } }
    }

    /// WIFSIGNALED, which Swift does not import (a macro).
    private static func signalled(_ status: Int32) -> Bool {
        let signal = status & 0x7f
        return signal != 0 && signal != 0x7f
    }

    /// A pipe reader: hands each chunk to `handler`, and closes the pipe at end of file.
    private static func drain(
        _ fd: Int32, into handler: @Sendable ([UInt8]) -> Void, state: NIOLockedValueBox<State>
    ) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                handler(Array(buffer[..<count]))
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(fd)
        let done = state.withLockedValue { state -> Finished? in
            state.openReaders -= 1
            return finishIfDone(&state)
        }
        if let (result, waiters) = done { for waiter in waiters { waiter.resume(returning: result) } }
    }
}
