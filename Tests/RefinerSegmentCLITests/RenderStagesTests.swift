import Foundation
import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// `render` with its reading stage on a thread of its own (``RenderStages``) prints, reports and exits exactly as
/// on one thread, whatever the chunk size, the bound of chunks in flight and the input's mix of records.
struct RenderStagesTests {
    /// Chunk sizes and bounds that put chunk edges everywhere: one record a chunk, a prime, the default.
    static let pipelines: [RenderStages] = [
        RenderStages(isPipelined: true, chunkRecords: 1, chunksInFlight: 1),
        RenderStages(isPipelined: true, chunkRecords: 7, chunksInFlight: 2),
        RenderStages(isPipelined: true, chunkRecords: 256, chunkBytes: 3_000, chunksInFlight: 2),
        RenderStages(isPipelined: true),
    ]

    @Test(arguments: pipelines)
    func pipelinedRenderMatchesOneThreadOnMixedInput(stages: RenderStages) throws {
        let input = try MixedInput.make(records: 1_500, seed: 0x5EED)
        let alone = RenderRun.run(["render"], input: input, stages: .oneThread)
        let pipelined = RenderRun.run(["render"], input: input, stages: stages)
        #expect(alone.status == 1, "the mix has bad records")
        #expect(alone.output.count > 1_000)
        #expect(alone.error.contains("skipped"))
        #expect(alone.error.contains("ignored"))
        #expect(pipelined.output == alone.output)
        #expect(pipelined.error == alone.error)
        #expect(pipelined.status == alone.status)
    }

    @Test(arguments: pipelines)
    func pipelinedRenderMatchesOneThreadWithProfilesAndTrack(stages: RenderStages) throws {
        let input = try MixedInput.make(records: 600, seed: 7)
        let arguments = ["render", "--track", "--prefix", "survey_"]
        let alone = RenderRun.run(arguments, input: input, stages: .oneThread)
        let pipelined = RenderRun.run(arguments, input: input, stages: stages)
        #expect(String(decoding: alone.output, as: UTF8.self).contains(#""type":"track""#))
        #expect(pipelined.output == alone.output)
        #expect(pipelined.error == alone.error)
        #expect(pipelined.status == alone.status)
    }

    @Test(arguments: pipelines)
    func inputThatFailsMidwayFailsTheSameWay(stages: RenderStages) throws {
        let input = try MixedInput.make(records: 400, seed: 11)
        let alone = RenderRun.run(["render"], input: input, failingAfter: 3, stages: .oneThread)
        let pipelined = RenderRun.run(["render"], input: input, failingAfter: 3, stages: stages)
        #expect(alone.status == RefinerSegmentTool.failure)
        #expect(alone.error.hasSuffix("refiner-segment: cannot read the input: the test source failed\n"))
        #expect(!alone.output.isEmpty, "the records read before the failure are printed")
        #expect(pipelined.output == alone.output)
        #expect(pipelined.error == alone.error)
        #expect(pipelined.status == alone.status)
    }

    @Test func emptyInputRendersNothingInEitherShape() {
        for stages in Self.pipelines + [.oneThread] {
            let run = RenderRun.run(["render"], input: [], stages: stages)
            #expect(run.status == 0)
            #expect(run.output.isEmpty)
            #expect(run.error.isEmpty)
        }
    }

    @Test func writingStageThatThrowsStopsTheReadingThread() throws {
        let input = try MixedInput.make(records: 2_000, seed: 3)
        let stages = RenderStages(isPipelined: true, chunkRecords: 4, chunksInFlight: 1)
        var seen = 0
        struct Stop: Error {}
        // Without the hand-off's close, the reading thread would wait for room for good and the join would not
        // return.
        #expect(throws: Stop.self) {
            let reading = RenderReading(reader: RecordReader(source: MemorySource(input, chunkSize: 4096)))
            try stages.forEachStep(of: reading) { _ in
                seen += 1
                if seen == 10 { throw Stop() }
            }
        }
        #expect(seen == 10)
    }

    @Test func stepsArriveInInputOrderAcrossChunks() {
        var lines: [String] = []
        for index in 1...1_000 { lines.append(index % 3 == 0 ? "not json \(index)" : "   ") }
        let input = Array(lines.joined(separator: "\n").utf8)
        let reading = RenderReading(reader: RecordReader(source: MemorySource(input, chunkSize: 97)))
        var order: [Int] = []
        RenderStages(isPipelined: true, chunkRecords: 5, chunksInFlight: 2).forEachStep(of: reading) { step in
            if case .notResponse(let lines, _) = step { order.append(lines.lowerBound) }
        }
        #expect(order == Array(stride(from: 3, through: 1_000, by: 3)))
    }

    @Test func chunksStopAtTheirByteBound() {
        let line = "not json " + String(repeating: "x", count: 491)  // 500 bytes
        let input = Array(Array(repeating: line, count: 100).joined(separator: "\n").utf8)
        var reading = RenderReading(reader: RecordReader(source: MemorySource(input)))
        let handOff = StageHandOff<RenderStep>(capacity: 1_000)
        reading.run(into: handOff, chunkRecords: 256, chunkBytes: 2_000)
        var sizes: [Int] = []
        while let chunk = handOff.receive() { sizes.append(chunk.count) }
        // Four records of 500 bytes reach the bound: the fourth is a chunk's last.
        #expect(sizes == Array(repeating: 4, count: 25))
    }

    @Test func handOffKeepsOrderAndReleasesAWaitingProducerOnClose() {
        let handOff = StageHandOff<Int>(capacity: 1)
        let sent = Locked<[Bool]>([])
        var state: Int? = 0
        let thread = JoinedThread.start(&state) { _ in
            for value in 0..<100 {
                let accepted = handOff.send([value])
                sent.withLock { $0.append(accepted) }
                if !accepted { return }
            }
            handOff.finish()
        }
        #expect(state == nil, "the value moved into the thread")
        #expect(handOff.receive() == [0])
        #expect(handOff.receive() == [1])
        handOff.close()
        thread?.join()
        let results = sent.withLock { $0 }
        #expect(thread != nil)
        #expect(results.prefix(2) == [true, true])
        #expect(results.last == false, "a producer waiting for room is told the consumer left")
    }
}

/// One in-process run of `render` with the given stages.
private struct RenderRun {
    var status: Int32
    var output: [UInt8]
    var error: String

    /// Runs `render` over `input`; with `failingAfter`, reading fails after that many chunks of 4 KiB.
    static func run(_ arguments: [String], input: [UInt8], failingAfter: Int? = nil, stages: RenderStages)
        -> RenderRun
    {
        let collected = Locked((output: [UInt8](), error: ""))
        let io = ToolIO(
            openInput: { _ in
                FailingSource(source: MemorySource(input, chunkSize: 4096), chunksLeft: failingAfter ?? .max)
            },
            writeOutput: { bytes in collected.withLock { $0.output += bytes } },
            writeError: { text in collected.withLock { $0.error += text } }
        )
        let tool = RefinerSegmentTool(io: io)
        let status: Int32
        do {
            status = try tool.render(Array(arguments.dropFirst()), stages: stages)
        } catch {
            // As `run(_:)` reports it.
            io.writeError("refiner-segment: \(error)\n")
            status = RefinerSegmentTool.failure
        }
        return collected.withLock { RenderRun(status: status, output: $0.output, error: $0.error) }
    }
}

/// A source that fails once it has served `chunksLeft` chunks.
private struct FailingSource: ByteSource {
    var source: MemorySource
    var chunksLeft: Int

    mutating func read() throws -> [UInt8] {
        guard chunksLeft > 0 else { throw ToolError("cannot read the input: the test source failed") }
        chunksLeft -= 1
        return try source.read()
    }
}

/// A seeded mix of every kind of record `render` meets: responses in both shapes (one line and pretty-printed),
/// repeats of one survey and other surveys, and bad records of every kind the reading stage reports.
private enum MixedInput {
    static func make(records: Int, seed: UInt64) throws -> [UInt8] {
        let webhook = String(decoding: try WebhookCLIFixtures.completedSurveyOnOneLine(), as: UTF8.self)
        let pretty = String(decoding: try WebhookCLIFixtures.completedSurvey(), as: UTF8.self)
        var random = seed
        func next(_ bound: Int) -> Int {
            random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((random >> 33) % UInt64(bound))
        }
        var lines: [[UInt8]] = []
        for index in 0..<records {
            let user = "user-\(next(40))"
            let survey = next(4) == 0 ? "survey-\(next(3))" : "onboarding"
            let good =
                #"{"id": "resp_\#(index)", "completedAt": "2026-11-20T10:15:\#(10 + next(50)).000Z", "#
                + #""survey": {"id": "\#(survey)", "name": "The \#(survey) survey"}, "#
                + #""user": {"id": "\#(user)", "email": "\#(user)@example.com"}, "account": {"id": "acct-\#(next(9))"}, "#
                + #""answers": [{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO \#(next(5))"}, "#
                + #"{"question": {"id": "q2", "text": "How likely are you to recommend us?"}, "value": \#(next(11))}]}"#
            switch next(20) {
            case 0: lines.append(Array(good.dropLast(7).utf8))  // cut short
            case 1: lines.append(Array(good.replacingOccurrences(of: "\"resp_", with: "1, \"x\": \"").utf8))
            case 2: lines.append(Array(good.utf8) + [0xFF, 0xFE])  // not UTF-8
            case 3: lines.append(Array("  \t ".utf8))
            case 4: lines.append([])
            case 5: lines.append(Array(webhook.utf8))
            case 6: lines.append(Array(pretty.utf8))
            case 7:
                lines.append(Array(webhook.replacingOccurrences(of: "Completed Survey", with: "Viewed Survey").utf8))
            case 8: lines.append(Array("{\n  \"id\": \"open\",".utf8))  // a document another record interrupts
            case 9: lines.append(Array(#"{"type":"identify","messageId":"m-\#(index)","userId":"u"}"#.utf8))
            case 10: lines.append(Array(good.replacingOccurrences(of: "\"user\": {", with: "\"usr\": {").utf8))
            default: lines.append(Array(good.utf8))
            }
        }
        // The input ends inside a pretty-printed document, which is then reported as unterminated.
        lines.append(Array("{\n  \"id\": \"last\",".utf8))
        return Array(lines.joined(separator: [UInt8(ascii: "\n")]))
    }
}
