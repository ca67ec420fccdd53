import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@Suite struct BatchingTests {
    /// Records every unit in one call (so all are queued before the first batch is cut) and delivers them.
    private func deliver(
        _ units: [[SegmentMessage]], configure: (inout SegmentPipeline.Configuration) -> Void = { _ in }
    )
        async throws -> Harness
    {
        let harness = try await Harness(configure: configure)
        try await harness.pipeline.record(contentsOf: units)
        await harness.pipeline.flush()
        _ = await harness.finish()
        return harness
    }

    @Test(arguments: [(2500, [2500]), (2501, [2500, 1]), (5000, [2500, 2500]), (1, [1])])
    func batchesHoldAtMost2500Messages(count: Int, sizes: [Int]) async throws {
        let units = (0..<count).map { [Messages.sized("m\($0)", size: 100)] }
        let harness = try await deliver(units) { $0.queue.maximumMessages = 10_000 }
        let batches = try await harness.batches()
        #expect(batches.map(\.count) == sizes)
        #expect(batches.flatMap { $0 } == units.map { $0[0].messageID })
    }

    @Test func aBatchFilledToExactly500KBGoesInOneRequest() async throws {
        let envelope = SegmentBatch.envelopeBytes(writeKey: Harness.writeKey)
        // 100 messages and 99 commas fill the rest exactly.
        let available = SegmentBatch.maximumBytes - envelope - 99
        var sizes = Array(repeating: available / 100, count: 100)
        sizes[99] += available % 100
        let units = sizes.enumerated().map { [Messages.sized("m\($0.offset)", size: $0.element)] }
        let harness = try await deliver(units)
        let bodies = await harness.transport.requests.map(\.body.count)
        #expect(bodies == [SegmentBatch.maximumBytes])
    }

    @Test func oneByteMoreSplitsTheBatch() async throws {
        let envelope = SegmentBatch.envelopeBytes(writeKey: Harness.writeKey)
        let available = SegmentBatch.maximumBytes - envelope - 99 + 1
        var sizes = Array(repeating: available / 100, count: 100)
        sizes[99] += available % 100
        let units = sizes.enumerated().map { [Messages.sized("m\($0.offset)", size: $0.element)] }
        let harness = try await deliver(units)
        let bodies = await harness.transport.requests.map(\.body.count)
        #expect(bodies.count == 2)
        #expect(bodies.allSatisfy { $0 <= SegmentBatch.maximumBytes })
        #expect(try await harness.batches().flatMap { $0 } == units.map { $0[0].messageID })
    }

    @Test(arguments: [3, 5, 7])
    func aPairIsNeverSplitByTheMessageLimit(maximumMessages: Int) async throws {
        let units = try (0..<10).map { try Messages.pair("r\($0)") }
        let harness = try await deliver(units) { $0.batch.maximumMessages = maximumMessages }
        let batches = try await harness.batches()
        #expect(batches.allSatisfy { $0.count <= maximumMessages && $0.count % 2 == 0 })
        for batch in batches {
            for index in stride(from: 0, to: batch.count, by: 2) {
                #expect(batch[index].hasSuffix("-identify"))
                #expect(batch[index + 1] == batch[index].replacingOccurrences(of: "-identify", with: "-group"))
            }
        }
        #expect(batches.flatMap { $0 } == units.flatMap { $0.map(\.messageID) })
    }

    @Test func aPairIsNeverSplitByTheByteLimit() async throws {
        // Each message is 100 KB; a batch holds four, so five pairs must go as 2 + 2 + 1 pairs.
        let units = (0..<5).map { [Messages.sized("i\($0)", size: 100_000), Messages.sized("g\($0)", size: 100_000)] }
        let harness = try await deliver(units) { $0.batch.maximumMessageBytes = 100_000 }
        let batches = try await harness.batches()
        #expect(batches.map(\.count) == [4, 4, 2])
        #expect(batches.flatMap { $0 } == units.flatMap { $0.map(\.messageID) })
        #expect(batches.allSatisfy { $0.count % 2 == 0 && $0.count <= 4 })
        #expect(await harness.transport.requests.allSatisfy { $0.body.count <= SegmentBatch.maximumBytes })
    }

    @Test func orderIsKeptAcrossManyBatchesAndRetries() async throws {
        let units = try (0..<600).map { try Messages.pair("r\($0)") }
        let harness = try await Harness([.status(500), .status(200), .timeout, .status(503)]) {
            $0.batch.maximumMessages = 50
        }
        for unit in units { try await harness.pipeline.record(unit) }
        await harness.pipeline.flush()
        let outcomes = await harness.finish()
        let delivered = outcomes.filter { $0.name == "delivered" }.flatMap(\.messages)
        #expect(delivered == units.flatMap { $0.map(\.messageID) })
        #expect(await harness.pipeline.counters.delivered == 1200)
    }

    @Test func aUnitThatCannotFitOneBatchIsRefused() async throws {
        let harness = try await Harness { $0.batch.maximumMessages = 1 }
        await #expect(throws: SegmentDeliveryError.self) {
            try await harness.pipeline.record(try Messages.pair("r1"))
        }
        do {
            try await harness.pipeline.record([Messages.sized("big", size: 32 * 1024 + 1)])
            Issue.record("a message over 32 KB was accepted")
        } catch let error as SegmentDeliveryError {
            #expect(error.code == .messageTooLarge)
        }
        #expect(await harness.pipeline.counters.accepted == 0)
    }

    @Test func recordingAResponseOnAProfileStoreUpdatesTheAccount() async throws {
        let harness = try await Harness()
        let response = SurveyResponse(
            id: "resp_8", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: "u1"), account: Account(id: "a1"),
            answers: [Answer(question: Question(id: "q", text: "Industry?", attribution: .account), value: "retail")])
        let profiles = MemoryProfileStore()
        try await harness.pipeline.record(response, profiles: profiles, builder: SegmentCallBuilder())
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(await profiles.profile(.account("a1")).account?.traits["refiner_industry"] == .string("retail"))
        #expect(try await harness.batches() == [["refiner-resp_8-identify", "refiner-resp_8-group"]])
    }

    @Test func anInvalidResponseIsRefusedBeforeAnythingIsQueued() async throws {
        let harness = try await Harness()
        let profiles = MemoryProfileStore()
        let response = SurveyResponse(
            id: "resp_7", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User())
        await #expect(throws: RefinerSegmentError.self) {
            try await harness.pipeline.record(response, profiles: profiles, builder: try SegmentCallBuilder())
        }
        #expect(await harness.pipeline.counters.accepted == 0)
        #expect(await profiles.counts == (0, 0))
        _ = await harness.finish()
    }

    @Test func recordingAResponseBuildsItsPairAndUpdatesTheStore() async throws {
        let harness = try await Harness()
        let profiles = MemoryProfileStore()
        let response = SurveyResponse(
            id: "resp_9", completedAt: Date(timeIntervalSince1970: 1_795_600_000), survey: Survey(id: "s"),
            user: User(id: "u1"), account: Account(id: "a1"),
            answers: [Answer(question: Question(id: "q", text: "Role?"), value: "CEO")])
        try await harness.pipeline.record(response, profiles: profiles, builder: try SegmentCallBuilder())
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(try await harness.batches() == [["refiner-resp_9-identify", "refiner-resp_9-group"]])
        #expect(await profiles.profile(.user("u1")).user?.traits["refiner_role"] == .string("CEO"))
    }
}
