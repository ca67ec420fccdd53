import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@testable import RefinerSegmentFileStore

@Suite struct FileMessageStoreTests {
    private func directory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("file-store-\(UUID().uuidString)")
    }

    private func unit(_ id: String) throws -> [SegmentMessage] {
        [
            try SegmentMessage(json: Array(#"{"type":"identify","messageId":"\#(id)-i","userId":"u"}"#.utf8)),
            try SegmentMessage(
                json: Array(#"{"type":"group","messageId":"\#(id)-g","userId":"u","groupId":"g"}"#.utf8)),
        ]
    }

    @Test func whatIsNotSettledIsThereAfterReopening() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try unit("a"), try unit("b"), try unit("c")], tenant: "default") == 3)
            let claim = try #require(
                try await store.claim(tenant: "default", maximumMessages: 2, maximumBytes: 1 << 20, lease: .zero))
            #expect(claim.messages.map(\.messageID) == ["a-i", "a-g"])
            try await store.settle(claim, messages: 0..<2, as: .delivered)
            _ = try #require(
                try await store.claim(tenant: "default", maximumMessages: 2, maximumBytes: 1 << 20, lease: .zero))
        }
        let store = try FileMessageStore(directory: path)
        let recovery = try await store.recover(tenant: "default")
        #expect(recovery.messages == 4, "b (claimed, never settled) and c")
        #expect(recovery.damage.isEmpty)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.map(\.messageID) == ["b-i", "b-g", "c-i", "c-g"])
    }

    /// A group opens tenants one by one on one store: a tenant's recover must leave another tenant's claim
    /// in flight alone. It released every tenant's claims: `send --tenants --store` sent a batch in its
    /// retry sleep twice (claimed again by its tenant's next claim) and counted it twice.
    @Test func aTenantsRecoverLeavesAnotherTenantsClaimInFlight() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.append([try unit("a1"), try unit("a2")], tenant: "acme") == 2)
        let claim = try #require(
            try await store.claim(tenant: "acme", maximumMessages: 2, maximumBytes: 1 << 20, lease: .seconds(60)))
        #expect(try await store.append([try unit("g1")], tenant: "globex") == 1)
        _ = try await store.recover(tenant: "globex")
        let next = try await store.claim(tenant: "acme", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero)
        #expect(next?.messages.map(\.messageID) == ["a2-i", "a2-g"], "a1 is still in flight")
        try await store.settle(claim, messages: 0..<2, as: .delivered)
        if let next { try await store.settle(next, messages: 0..<2, as: .delivered) }
        #expect(try await store.usage(tenant: "acme").messages == 0)
        #expect(try await store.usage(tenant: "globex").messages == 2)
    }

    /// The segments hold answers and emails: under the usual umask 022 they must still be the owner's only,
    /// and a symlink planted where the store writes is refused, not followed.
    @Test func itsFilesAreTheOwnersOnlyAndPlantedSymlinksAreNotFollowed() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let previous = umask(0o022)
        defer { umask(previous) }
        do {
            let store = try FileMessageStore(directory: path)
            #expect(try await store.append([try unit("a")], tenant: "default") == 1)
            try await store.setPause(until: Date(timeIntervalSince1970: 2_000_000_000), tenant: "default")
        }
        let directoryMode = try #require(
            try FileManager.default.attributesOfItem(atPath: path.path)[.posixPermissions] as? Int)
        #expect(directoryMode & 0o077 == 0, "directory mode \(String(directoryMode, radix: 8))")
        let names = try FileManager.default.contentsOfDirectory(atPath: path.path)
        #expect(names.contains { $0.hasPrefix("segment") })
        for name in names {
            let mode = try #require(
                try FileManager.default.attributesOfItem(atPath: path.appendingPathComponent(name).path)[
                    .posixPermissions] as? Int)
            #expect(mode & 0o077 == 0, "\(name) has mode \(String(mode, radix: 8))")
        }

        let planted = directory()
        defer { try? FileManager.default.removeItem(at: planted) }
        try FileManager.default.createDirectory(at: planted, withIntermediateDirectories: true)
        let victim = planted.appendingPathComponent("victim")
        try Data("keep me".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(
            at: planted.appendingPathComponent("acks.log"), withDestinationURL: victim)
        #expect(throws: (any Error).self) {
            _ = try FileMessageStore(directory: planted)
        }
        #expect(try Data(contentsOf: victim) == Data("keep me".utf8))
    }

    @Test func aSecondOpenIsRefusedNamingTheHoldersPid() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let first = try FileMessageStore(directory: path)
        do {
            _ = try FileMessageStore(directory: path)
            Issue.record("two stores shared one directory")
        } catch let error as FileStoreError {
            #expect(error.description.contains("in use by process \(ProcessInfo.processInfo.processIdentifier)"))
        }
        _ = first
    }

    @Test func aTornTailIsCutOffAndReportedAndWhatCameBeforeIsKept() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([try unit("a"), try unit("b")], tenant: "default")
        }
        let segment = try #require(
            try FileManager.default.contentsOfDirectory(atPath: path.path).first { $0.hasPrefix("segment-") })
        let file = path.appendingPathComponent(segment)
        let whole = try Data(contentsOf: file)
        let torn = SegmentRecord(sequence: 99, payload: Array(repeating: 1, count: 40)).encoded().prefix(30)
        try (whole + torn).write(to: file)
        let store = try FileMessageStore(directory: path)
        let recovery = try await store.recover(tenant: "default")
        #expect(recovery.messages == 4)
        #expect(recovery.damage.count == 1)
        #expect(recovery.damage.first?.isTornTail == true)
        #expect(recovery.damage.first?.byteCount == 30)
        #expect(try Data(contentsOf: file).count == whole.count, "the tail is cut off")
    }

    @Test func aFullStoreAcceptsAPrefix() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path, configuration: .init(maximumBytes: 400))
        let accepted = try await store.append(try (0..<10).map { try unit("u\($0)") }, tenant: "default")
        #expect(accepted > 0 && accepted < 10)
        #expect(try await store.usage(tenant: "default").storedBytes <= 400)
    }

    @Test func aPipelineOnTheFileStoreDeliversAndLeavesNothingBehind() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let transport = RecordingTransport()
        do {
            let store = try FileMessageStore(directory: path, configuration: .init(segmentBytes: 300))
            let delivered = try await SegmentPipeline.withPipeline(
                writeKey: WriteKey("wk"), transport: transport, store: store
            ) { pipeline in
                try await pipeline.record(contentsOf: try (0..<20).map { try unit("p\($0)") })
                await pipeline.flush()
                return await pipeline.counters.delivered
            }
            #expect(delivered == 40)
        }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").messages == 0)
        let segments = try FileManager.default.contentsOfDirectory(atPath: path.path).filter {
            $0.hasPrefix("segment-")
        }
        #expect(segments.count <= 1, "settled segments are deleted: \(segments)")
    }

    @Test func aPauseAndARetryScheduleSurviveAReopen() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(at: path) }
        let end = Date(timeIntervalSince1970: 2_000_000_000)
        do {
            let store = try FileMessageStore(directory: path)
            _ = try await store.append([try unit("a")], tenant: "default")
            let claim = try #require(
                try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
            try await store.settle(claim, messages: 0..<2, as: .retry(SegmentRetryState(failures: 3, retryCount: 3)))
            try await store.setPause(until: end, tenant: "default")
        }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").pausedUntil == end)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.retryState.failures == 3)
    }
}

@Suite struct FileStoreBoundTests {
    /// The transport is down; the store is capped at 8 MiB: with fail-fast, `record` throws `queueFull` once
    /// the cap is reached, every unit it accepted is in the store, and the disk never holds more than the cap.
    @Test func aStoreCappedAt8MiBNeverPassesItAndRefusesClearly() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bound-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: path) }
        let cap = 8 << 20
        let store = try FileMessageStore(directory: path, configuration: .init(maximumBytes: cap))
        var configuration = SegmentPipeline.Configuration()
        configuration.queue.whenFull = .fail
        let pipeline = try SegmentPipeline(
            writeKey: WriteKey("wk"), transport: ScriptedTransport([], whenDone: .hang), configuration: configuration,
            store: store)
        let padding = String(repeating: "x", count: 900)
        var accepted = 0
        var refusal: SegmentDeliveryError?
        batches: for batch in 0..<1000 {
            let units = try (0..<200).map { index -> [SegmentMessage] in
                let id = "b\(batch)-\(index)"
                return [
                    try SegmentMessage(
                        json: Array(#"{"type":"identify","messageId":"\#(id)","userId":"u","p":"\#(padding)"}"#.utf8))
                ]
            }
            do {
                try await pipeline.record(contentsOf: units)
                accepted += units.count
            } catch let error as SegmentDeliveryError {
                refusal = error
                break batches
            }
        }
        let held = try await store.usage(tenant: "default")
        #expect(refusal?.code == .queueFull)
        #expect(held.storedBytes <= cap)
        #expect(held.storedBytes > cap - 64 * 1024)
        #expect(await pipeline.counters.accepted == held.messages, "what was accepted is exactly what is held")
        #expect(held.messages >= accepted)
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasPrefix("segment-") }
            .reduce(0) {
                $0
                    + (((try? FileManager.default.attributesOfItem(atPath: path.appendingPathComponent($1).path))?[
                        .size] as? Int) ?? 0)
            }
        #expect(onDisk <= cap)
    }
}
