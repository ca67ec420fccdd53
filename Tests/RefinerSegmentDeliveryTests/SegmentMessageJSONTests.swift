import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@Suite struct SegmentMessageJSONTests {
    @Test(arguments: [
        #"{"type":"identify","messageId":"m1","userId":"u1","traits":{"a":1}}"#,
        #"{"type":"group","messageId":"m2","anonymousId":"a1","groupId":"g1"}"#,
        #"{"type":"track","messageId":"m3","userId":"u1","event":"Completed Survey","properties":{}}"#,
        #"{"type":"page","messageId":"m4","userId":"u1","name":"Home"}"#,
        #" { "messageId" : "m5", "type" : "identify", "userId" : "u1" } "#,
    ])
    func validMessagesPassThroughUnchanged(json: String) throws {
        let message = try SegmentMessage(json: Array(json.utf8))
        #expect(message.json == Array(json.utf8))
        #expect(message.messageID.hasPrefix("m"))
    }

    @Test func kindAndIDAreRead() throws {
        let message = try SegmentMessage(
            json: Array(#"{"type":"group","messageId":"x","userId":"u","groupId":"g"}"#.utf8))
        #expect(message.kind == .group)
        #expect(message.messageID == "x")
    }

    @Test(arguments: [
        ("not json", "not valid JSON"),
        (#"["type","identify"]"#, "an object"),
        (#"{"messageId":"m1","userId":"u1"}"#, "'type'"),
        (#"{"type":"identify","userId":"u1"}"#, "'messageId'"),
        (#"{"type":"identify","messageId":"","userId":"u1"}"#, "'messageId'"),
        (#"{"type":"identify","messageId":"m1"}"#, "userId"),
        (#"{"type":"identify","messageId":"m1","userId":""}"#, "userId"),
        (#"{"type":"group","messageId":"m1","userId":"u1"}"#, "groupId"),
        (#"{"type":"track","messageId":"m1","userId":"u1"}"#, "event"),
        (#"{"type":"identify","messageId":"m1","userId":42}"#, "userId"),
    ])
    func invalidMessagesAreRefusedWithTheReason(json: String, mention: String) {
        do {
            _ = try SegmentMessage(json: Array(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .invalidMessage)
            #expect(error.description.contains(mention), "\(error)")
        }
    }

    @Test func aMessageIDLongerThan100CharactersIsRefused() {
        let id = String(repeating: "m", count: 101)
        #expect(throws: RefinerSegmentError.self) {
            _ = try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u"}"#.utf8))
        }
    }

    @Test func aMessageOver32KBIsRefused() {
        let json =
            #"{"type":"identify","messageId":"m","userId":"u","traits":{"t":""#
            + String(repeating: "x", count: 32 * 1024) + #""}}"#
        do {
            _ = try SegmentMessage(json: Array(json.utf8))
            Issue.record("accepted a message over 32 KB")
        } catch {
            #expect(error.code == .messageTooLarge)
        }
    }

    @Test func builtMessagesReadBackEqual() throws {
        for message in try Messages.pair("r1") {
            let read = try SegmentMessage(json: message.json)
            #expect(read.json == message.json)
            #expect(read.kind == message.kind)
            #expect(read.messageID == message.messageID)
        }
    }
}

@Suite struct TestDoubleTests {
    @Test func scriptedDelaysPassInVirtualTime() async throws {
        let harness = try await Harness([
            .delay(.seconds(5), then: .status(500)), .delay(.seconds(2), then: .status(200)),
        ])
        try await harness.pipeline.record(try Messages.pair("r1"))
        await harness.pipeline.flush()
        _ = await harness.finish()
        #expect(harness.clock.sleeps == [.seconds(5), .milliseconds(500), .seconds(2)])
        #expect(harness.clock.date.timeIntervalSince1970 == 1_795_600_800 + 7.5)
    }

    @Test func manualClockWakesSleepersInOrderOfTheirWakeTime() async throws {
        let clock = VirtualClock(mode: .manual)
        let order = Order()
        let late = Task {
            try await clock.sleep(for: .seconds(10))
            await order.append("late")
        }
        await clock.waitForSleepers(1)
        let early = Task {
            try await clock.sleep(for: .seconds(3))
            await order.append("early")
        }
        await clock.waitForSleepers(2)
        clock.advance(by: .seconds(3))
        try await early.value
        #expect(await order.items == ["early"])
        #expect(clock.pendingSleepers == 1)
        clock.advance(by: .seconds(7))
        try await late.value
        #expect(await order.items == ["early", "late"])
    }

    @Test func aCancelledSleepThrows() async {
        let clock = VirtualClock(mode: .manual)
        let sleeper = Task { try await clock.sleep(for: .seconds(60)) }
        await clock.waitForSleepers(1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.pendingSleepers == 0)
    }

    @Test func recordingTransportKeepsEveryRequest() async throws {
        let transport = RecordingTransport(response: SegmentResponse(statusCode: 202))
        let delivered = try await SegmentPipeline.withPipeline(writeKey: WriteKey("k"), transport: transport) {
            try await $0.record(try Messages.pair("r1"))
            await $0.flush()
            return await $0.counters.delivered
        }
        #expect(await transport.requests.count == 1)
        #expect(delivered == 2)
    }
}

actor Order {
    var items: [String] = []
    func append(_ item: String) { items.append(item) }
}
