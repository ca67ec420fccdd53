import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import Testing

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// The built `refiner-segment`.
enum BuiltRefinerSegment {
    static let url = BuiltExecutable.url(named: "refiner-segment")
}

/// `render --profiles FILE` killed with SIGKILL while it writes: every apply that completed is intact.
@Suite(.serialized) struct FileProfileStoreCrashTests {
    /// One response per line; response `n` gives user `u(n % 500)` the trait `answer_n` and its account one
    /// more trait.
    static func input(_ range: Range<Int>) -> String {
        var text = ""
        for index in range {
            text +=
                #"{"id":"r\#(index)","completedAt":"2026-11-20T10:15:00.000Z","survey":{"id":"s"},"#
                + #""user":{"id":"u\#(index % 500)"},"account":{"id":"a\#(index % 7)"},"answers":["#
                + #"{"question":{"id":"q\#(index)","text":"Q?","property":"answer_\#(index)"},"value":\#(index)},"#
                + #"{"question":{"id":"g\#(index)","text":"G?","property":"account_\#(index % 50)","attribution":"account"},"value":\#(index)}]}"#
                + "\n"
        }
        return text
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    @Test(.enabled(if: BuiltRefinerSegment.url != nil, "the built refiner-segment executable was not found"))
    func killedMidWriteItReopensWithEveryCompletedApply() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "profile-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("profiles").path
        var printed: Set<Int> = []
        for round in 0..<3 {
            let range = (round * 100_000)..<((round + 1) * 100_000)
            let inputURL = directory.appendingPathComponent("in-\(round).jsonl")
            try Data(Self.input(range).utf8).write(to: inputURL)
            let outputURL = directory.appendingPathComponent("out-\(round).jsonl")
            _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
            let process = Process()
            process.executableURL = BuiltRefinerSegment.url
            process.arguments = ["render", "--profiles", store, inputURL.path]
            process.standardOutput = try FileHandle(forWritingTo: outputURL)
            process.standardError = FileHandle.nullDevice
            let start = Self.fileSize(store)
            try process.run()
            // Kill it once it has written a while (a different amount each round), wherever it is.
            let target = start + (round + 1) * 1_500_000
            let deadline = ContinuousClock.now + .seconds(120)
            while process.isRunning, Self.fileSize(store) < target, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(process.isRunning, "round \(round): render finished before it could be killed")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            // Every response whose identify was printed had been applied before it was printed.
            let output = String(decoding: try Data(contentsOf: outputURL), as: UTF8.self)
            for line in output.split(separator: "\n") where line.hasSuffix("}") && line.contains(#""type":"identify""#)
            {
                if let range = line.range(of: #""messageId":"refiner-r"#) {
                    let digits = line[range.upperBound...].prefix { $0.isNumber }
                    if let index = Int(digits) { printed.insert(index) }
                }
            }
            #expect(!printed.isEmpty)
            let reopened = try FileProfileStore(path: store)
            for index in printed {
                let user = try reopened.user(.user("u\(index % 500)"))
                #expect(user?.traits["refiner_answer_\(index)"] == .integer(Int64(index)), "round \(round): r\(index)")
            }
            for account in 0..<7 { #expect(try reopened.account(id: "a\(account)") != nil) }
            reopened.close()
        }
    }
}
