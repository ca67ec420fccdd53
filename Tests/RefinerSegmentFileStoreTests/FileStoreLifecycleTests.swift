import Foundation
import RefinerSegment
import RefinerSegmentTesting
import Testing

@testable import RefinerSegmentFileStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The segments' lifecycle at its edges: the active segment once all of it is delivered, an append whose
/// `fsync` failed, a record that cannot be read back.
@Suite struct FileStoreLifecycleTests {
    static func directory(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    }

    static func units(_ count: Int, tag: String, padding: Int = 900) throws -> [[SegmentMessage]] {
        let padding = String(repeating: "x", count: padding)
        return try (0..<count).map { index in
            [
                try SegmentMessage(
                    json: Array(
                        #"{"type":"identify","messageId":"\#(tag)-\#(index)","userId":"u","p":"\#(padding)"}"#.utf8))
            ]
        }
    }

    static func bytesOfSegmentFiles(_ path: URL) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasPrefix("segment-") }.reduce(0) {
            $0
                + (((try? FileManager.default.attributesOfItem(atPath: path.appendingPathComponent($1).path))?[.size]
                    as? Int) ?? 0)
        }
    }

    /// Everything fits in the first (active, still open) segment and is delivered: the store then holds
    /// nothing on disk or in `usage`, so a delivered store never counts against its own bound.
    @Test func aStoreThatDeliveredEverythingHoldsNothing() async throws {
        let path = Self.directory("settled-active")
        defer { try? FileManager.default.removeItem(at: path) }
        let store = try FileMessageStore(directory: path, configuration: .init(maximumBytes: 8 << 20))
        let transport = RecordingTransport()
        let delivered = try await SegmentPipeline.withPipeline(
            writeKey: WriteKey("wk"), transport: transport, store: store
        ) { pipeline in
            for round in 0..<3 {
                try await pipeline.record(contentsOf: try Self.units(200, tag: "r\(round)"))
                await pipeline.flush()
            }
            return await pipeline.counters.delivered
        }
        #expect(delivered == 600)
        let usage = try await store.usage(tenant: "default")
        #expect(usage.messages == 0)
        #expect(usage.storedBytes == 0, "\(usage.storedBytes) bytes of delivered messages still counted")
        #expect(try Self.bytesOfSegmentFiles(path) == 0)
        // And it takes as much again as its bound allows.
        #expect(try await store.append(try Self.units(200, tag: "again"), tenant: "default") == 200)
    }

    /// `fsync` fails (EIO) for one append: its caller gets the error, and no reopen delivers its units, whether
    /// they sit at the end of the segment (cut off) or partly in the segment before (a segment of two units:
    /// acknowledged). Appends before and after are kept.
    @Test(arguments: [1 << 20, 2200])
    func anAppendWhoseFsyncFailedIsNeverDeliveredAfterAReopen(segmentBytes: Int) async throws {
        let path = Self.directory("fsync-fails")
        defer { try? FileManager.default.removeItem(at: path) }
        let failing = Locked(false)
        do {
            let store = try FileMessageStore(
                directory: path, configuration: .init(segmentBytes: segmentBytes),
                fsync: { descriptor in
                    guard failing.withLock({ $0 }) else { return fsync(descriptor) }
                    errno = EIO
                    return -1
                })
            #expect(try await store.append(try Self.units(1, tag: "before"), tenant: "default") == 1)
            failing.withLock { $0 = true }
            await #expect(throws: FileStoreError.self) {
                try await store.append(try Self.units(3, tag: "threw"), tenant: "default")
            }
            failing.withLock { $0 = false }
            #expect(try await store.usage(tenant: "default").messages == 1)
            #expect(try await store.append(try Self.units(1, tag: "after"), tenant: "default") == 1)
        }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").messages == 2)
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 100, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.map(\.messageID) == ["before-0", "after-0"])
    }

    /// `pread` fails (EIO) for every claim: the pipeline reports each failed claim, and on the third the
    /// units are set aside and reported as failed with a reason, so `flush()` returns instead of retrying
    /// forever; the store keeps them, and a reopen whose reads work delivers them.
    @Test func aRecordThatCannotBeReadIsReportedAfterThreeAttemptsAndKept() async throws {
        let path = Self.directory("pread-fails")
        defer { try? FileManager.default.removeItem(at: path) }
        let clock = VirtualClock()
        let failing = Locked(true)
        let (counters, reasons) = try await {
            let store = try FileMessageStore(
                directory: path, configuration: .init(), fsync: { fsync($0) },
                pread: { descriptor, buffer, count, offset in
                    guard failing.withLock({ $0 }) else { return pread(descriptor, buffer, count, offset) }
                    errno = EIO
                    return -1
                }, recentLimit: 0)
            return try await SegmentPipeline.withPipeline(
                writeKey: WriteKey("wk"), transport: RecordingTransport(), store: store, clock: clock,
                wallClock: clock.wallClock
            ) { pipeline in
                let outcomes = await pipeline.outcomes(bufferingPolicy: .unbounded)
                try await pipeline.record(contentsOf: try Self.units(3, tag: "unreadable"))
                await pipeline.flush()
                var reasons: [SegmentDeliveryError] = []
                for await outcome in outcomes {
                    guard case .failed(let messages, let reason) = outcome, messages.isEmpty else { continue }
                    reasons.append(reason)
                    if reasons.count == 3 { break }
                }
                return (await pipeline.counters, reasons)
            }
        }()
        #expect(counters.storeFailures == 3, "two failed claims, then the units set aside")
        #expect(counters.delivered == 0)
        #expect(reasons.allSatisfy { $0.code == .storeFailure })
        #expect(reasons.last?.description.contains("could not be read 3 times: kept in the store") == true)
        #expect(reasons.last?.underlying is FileStoreError)
        failing.withLock { $0 = false }
        let store = try FileMessageStore(directory: path)
        #expect(try await store.recover(tenant: "default").messages == 3, "kept")
    }

    /// A record damaged on disk after the store opened is left out of the claim and reported in it, dropped.
    @Test func aRecordDamagedSinceOpeningIsReportedInTheClaimAndDropped() async throws {
        let path = Self.directory("damaged-since-open")
        defer { try? FileManager.default.removeItem(at: path) }
        // Claims read every record back: none is taken from the memory of what was just appended.
        let store = try FileMessageStore(directory: path, configuration: .init(), fsync: { fsync($0) }, recentLimit: 0)
        #expect(try await store.append(try Self.units(2, tag: "d"), tenant: "default") == 2)
        let name = try #require(
            try FileManager.default.contentsOfDirectory(atPath: path.path).first { $0.hasPrefix("segment-") })
        let file = try FileHandle(forUpdating: path.appendingPathComponent(name))
        try file.seek(toOffset: UInt64(SegmentRecord.headerSize + 40))
        try file.write(contentsOf: Data("#".utf8))
        try file.close()
        let claim = try #require(
            try await store.claim(tenant: "default", maximumMessages: 10, maximumBytes: 1 << 20, lease: .zero))
        #expect(claim.messages.map(\.messageID) == ["d-1"])
        #expect(claim.unreadable.count == 1)
        #expect(claim.unreadable.first?.messageCount == 1)
        #expect(claim.unreadable.first?.isKept == false)
        #expect(try await store.usage(tenant: "default").messages == 1, "the damaged one is dropped")
    }

    /// Units just appended are claimed from memory, up to the bound: with every `pread` failing, a claim of
    /// units within the bound still gets their messages; past the bound (or with none) it must read, and fails.
    @Test func unitsJustAppendedAreClaimedFromMemoryWithinTheBound() async throws {
        let unreadable: @Sendable (Int32, UnsafeMutableRawPointer, Int, off_t) -> Int = { _, _, _, _ in
            errno = EIO
            return -1
        }
        let units = try Self.units(2, tag: "recent")
        let unitBytes = units[0].reduce(0) { $0 + $1.byteCount }
        for (limit, claimable) in [(1 << 20, true), (unitBytes, false), (0, false)] {
            let path = Self.directory("recent-\(limit)")
            defer { try? FileManager.default.removeItem(at: path) }
            let store = try FileMessageStore(
                directory: path, configuration: .init(), fsync: { fsync($0) }, pread: unreadable, recentLimit: limit)
            #expect(try await store.append(units, tenant: "default") == 2)
            do {
                let claim = try await store.claim(
                    tenant: "default", maximumMessages: 100, maximumBytes: 1 << 20, lease: .zero)
                #expect(claimable, "limit \(limit): the claim read nothing from disk")
                #expect(claim?.messages.map(\.messageID) == units.flatMap { $0.map(\.messageID) })
                #expect(claim?.unreadable.isEmpty == true)
            } catch {
                #expect(!claimable, "limit \(limit): \(error)")
                #expect(error is FileStoreError)
            }
        }
    }
}
