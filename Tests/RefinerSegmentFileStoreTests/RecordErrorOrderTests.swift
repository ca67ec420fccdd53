import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentTesting
import Testing

/// One mistake, one error, whatever the store: a unit that could never be accepted is reported as such
/// (`messageTooLarge`, `unitTooLarge`) also after a shutdown was asked for, by the in-memory store's way
/// and by a file store's alike; `shutDown` is for units that would otherwise be accepted.
@Suite struct RecordErrorOrderTests {
    enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
        case inMemory, file
        var testDescription: String { rawValue }
    }

    /// A pipeline (never run) on `kind` of store whose shutdown was asked for, batches of at most two
    /// messages of at most 1 KB each (a larger one could not even be made: `SegmentMessage` refuses more
    /// than Segment's 32 KB), and a temporary directory to remove.
    static func shutDownPipeline(_ kind: StoreKind) throws -> (SegmentPipeline, URL?) {
        var configuration = SegmentPipeline.Configuration()
        configuration.batch.maximumMessages = 2
        configuration.batch.maximumMessageBytes = 1024
        var directory: URL?
        var store: (any SegmentMessageStore)?
        if kind == .file {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent(
                "record-error-order-\(UUID().uuidString)")
            directory = path
            store = try FileMessageStore(directory: path)
        }
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk"), transport: RecordingTransport(), configuration: configuration, store: store)
        pipeline.triggerGracefulShutdown()
        return (pipeline, directory)
    }

    static func message(_ id: String, padding: Int = 0) throws -> SegmentMessage {
        let padding = String(repeating: "x", count: padding)
        return try SegmentMessage(
            json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u","p":"\#(padding)"}"#.utf8))
    }

    /// The code `body` throws, or nil when it throws nothing or something else.
    static func code(_ body: () async throws -> Void) async -> SegmentDeliveryError.Code? {
        do {
            try await body()
            Issue.record("accepted after a shutdown was asked for")
            return nil
        } catch let error as SegmentDeliveryError {
            return error.code
        } catch {
            Issue.record("not a SegmentDeliveryError: \(error)")
            return nil
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aUnitThatCouldNeverBeAcceptedSaysSoAfterAShutdownToo(kind: StoreKind) async throws {
        let (pipeline, directory) = try Self.shutDownPipeline(kind)
        defer { if let directory { try? FileManager.default.removeItem(at: directory) } }
        let big = try Self.message("big", padding: 2048)
        let three = try ["a", "b", "c"].map { try Self.message($0) }
        let small = try Self.message("small")

        #expect(await Self.code { try await pipeline.record([big]) } == .messageTooLarge)
        #expect(await Self.code { try await pipeline.record(three) } == .unitTooLarge)
        #expect(await Self.code { try await pipeline.record(contentsOf: [[big]]) } == .messageTooLarge)
        #expect(await Self.code { try await pipeline.record(contentsOf: [[], three, [small]]) } == .unitTooLarge)
        // A valid unit is refused for the shutdown, also when an invalid one follows it.
        #expect(await Self.code { try await pipeline.record([small]) } == .shutDown)
        #expect(await Self.code { try await pipeline.record(contentsOf: [[small], [big]]) } == .shutDown)
        #expect(await pipeline.counters.accepted == 0)
    }
}
