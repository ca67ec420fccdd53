import ChildProcessTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The test support that runs the drills and the example servers: exits, output and bounds, on `/bin/sh`.
struct ChildProcessTests {
    static let shell = URL(fileURLWithPath: "/bin/sh")

    /// What a reader thread handed over. Unchecked: `bytes` is only touched under `lock`.
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes: [UInt8] = []
        var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }
        func append(_ chunk: [UInt8]) { lock.withLock { bytes += chunk } }
    }

    @Test func theExitStatusComesWithTheWholeOutput() async throws {
        let output = Collected()
        let error = Collected()
        let child = try ChildProcess(
            Self.shell, arguments: ["-c", "printf 'one\\ntwo'; echo oops >&2; exit 3"],
            standardOutput: .pipe(output.append), standardError: .pipe(error.append))
        let termination = await child.wait(within: .seconds(60))
        #expect(termination == .exited(3))
        #expect(output.text == "one\ntwo")
        #expect(error.text == "oops\n")
        #expect(child.hasExited)
    }

    @Test func aSignalThatKillsTheChildIsReportedAsSuch() async throws {
        let child = try ChildProcess(Self.shell, arguments: ["-c", "kill -TERM $$; sleep 30"])
        #expect(await child.wait(within: .seconds(60)) == .signalled(SIGTERM))
        #expect(child.termination?.status == SIGTERM)
    }

    @Test func aBoundedWaitGivesUpAndTheKillIsSeen() async throws {
        let child = try ChildProcess(Self.shell, arguments: ["-c", "sleep 30"])
        #expect(await child.wait(within: .milliseconds(100)) == nil)
        #expect(!child.hasExited)
        switch await child.waitOrKill(within: .milliseconds(100)) {
        case .success(let termination):
            Issue.record("sleep 30 ended within 200 ms: \(termination)")
        case .failure(let timedOut):
            #expect(timedOut.afterKill == .signalled(SIGKILL))
            #expect(timedOut.description.contains("sleep 30 ran longer than"))
        }
        child.send(SIGKILL)  // once reaped, nothing is sent
    }

    @Test func theChildInheritsNoDescriptorButItsThreeStreams() async throws {
        // A descriptor without close-on-exec, as a socket of a loopback server or Foundation's pipes are.
        let leaky = open("/dev/null", O_RDONLY)
        try #require(leaky > 2)
        defer { close(leaky) }
        let output = Collected()
        let child = try ChildProcess(
            Self.shell, arguments: ["-c", "if [ -e /proc/$$/fd/\(leaky) ]; then echo leaked; else echo clean; fi"],
            standardOutput: .pipe(output.append))
        #expect(await child.wait(within: .seconds(60)) == .exited(0))
        #if os(Linux)
        #expect(output.text == "clean\n")
        #endif
    }

    @Test func aMissingExecutableIsASpawnError() throws {
        #expect(throws: ChildProcess.SpawnError.self) {
            _ = try ChildProcess(URL(fileURLWithPath: "/nonexistent/refiner-segment-test-binary"))
        }
    }
}
