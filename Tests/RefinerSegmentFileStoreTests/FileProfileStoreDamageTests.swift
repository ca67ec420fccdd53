import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import Testing

/// The index file of a profile store as bytes, to damage it the way a bad disk, a crafted file or a power cut
/// leaves it. It knows the layout of FileProfileStore+Storage.swift: a header (`RSPROFI2`: 64 bytes, the
/// fields then a CRC-32 of them at 48; the unchecksummed `RSPROFI1`: 48 bytes), then 16-byte slots of
/// (FNV-1a hash of the key, log offset of the key's newest entry).
struct ProfileIndexBytes {
    static let countField = 24
    static let liveBytesField = 32
    static let coveredField = 40
    static let capacityField = 16

    var bytes: [UInt8]

    init(path: String) throws {
        bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    var isChecksummed: Bool { bytes.starts(with: Array("RSPROFI2".utf8)) }
    var headerBytes: Int { isChecksummed ? 64 : 48 }
    var capacity: Int { Int(u64(at: Self.capacityField)) }

    func u64(at offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    mutating func setU64(_ value: UInt64, at offset: Int) {
        for shift in 0..<8 { bytes[offset + shift] = UInt8(truncatingIfNeeded: value >> (8 * shift)) }
    }

    /// Writes the header's checksum again, as a crafted file would (a no-op for the unchecksummed layout).
    mutating func reseal() {
        guard isChecksummed else { return }
        let crc = Self.crc32(bytes[0..<48])
        for shift in 0..<4 { bytes[48 + shift] = UInt8(truncatingIfNeeded: crc >> (8 * shift)) }
    }

    /// The byte offset of the slot that holds `key`.
    func slotPosition(of key: ProfileKey) -> Int? {
        let hash = Self.fnv1a(Array(key.storageKey.utf8))
        var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
        for _ in 0..<capacity {
            let position = headerBytes + slot * 16
            let slotHash = u64(at: position)
            if slotHash == 0 { return nil }
            if slotHash == hash { return position }
            slot = (slot + 1) & (capacity - 1)
        }
        return nil
    }

    func write(to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func fnv1a(_ key: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// A damaged or crafted index never traps: the store rebuilds it from the log, which holds the truth.
@Suite(.serialized) struct FileProfileStoreDamageTests {
    let directory: URL
    var path: String { directory.appendingPathComponent("profiles").path }
    var indexPath: String { path + ".index" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("profile-damage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// One way the index can be wrong. The header rows are resealed (a crafted file, whose checksum is right),
    /// except `flippedBit`, a bit flipped by the disk.
    enum Damage: String, CaseIterable, Sendable {
        case countTopBit, liveBytesTopBit, coveredTopBit, coveredPastTheLog, coveredInsideARecord
        case capacityTwoToThe62, capacityNotAPowerOfTwo, capacityLargerThanTheFile, flippedBit
        case slotOffsetTopBit, slotOffsetPastTheLog, slotOffsetAtAnotherKey, slotOffsetInsideAnEntry

        func apply(to index: inout ProfileIndexBytes, logSize: Int) throws {
            switch self {
            case .countTopBit: index.bytes[ProfileIndexBytes.countField + 7] |= 0x80
            case .liveBytesTopBit: index.bytes[ProfileIndexBytes.liveBytesField + 7] |= 0x80
            case .coveredTopBit: index.bytes[ProfileIndexBytes.coveredField + 7] |= 0x80
            case .coveredPastTheLog: index.setU64(UInt64(logSize + 100), at: ProfileIndexBytes.coveredField)
            case .coveredInsideARecord: index.setU64(16 + 12 + 3, at: ProfileIndexBytes.coveredField)  // the first
            case .capacityTwoToThe62: index.setU64(1 << 62, at: ProfileIndexBytes.capacityField)
            case .capacityNotAPowerOfTwo: index.setU64(3 << 12, at: ProfileIndexBytes.capacityField)
            case .capacityLargerThanTheFile: index.setU64(1 << 40, at: ProfileIndexBytes.capacityField)
            case .flippedBit: index.bytes[ProfileIndexBytes.coveredField + 1] ^= 0x04
            case .slotOffsetTopBit, .slotOffsetPastTheLog, .slotOffsetAtAnotherKey, .slotOffsetInsideAnEntry:
                let slot = try #require(index.slotPosition(of: .user("u0")))
                let other = try #require(index.slotPosition(of: .user("u1")))
                let offset = index.u64(at: slot + 8)
                let value: UInt64 =
                    switch self {
                    case .slotOffsetTopBit: offset | 1 << 63
                    case .slotOffsetPastTheLog: UInt64(logSize + 4096)
                    case .slotOffsetAtAnotherKey: index.u64(at: other + 8)
                    default: offset + 5  // inside the key: its bytes read as lengths
                    }
                index.setU64(value, at: slot + 8)
            }
            if self != .flippedBit { index.reseal() }
        }
    }

    /// 200 responses of 50 users and 5 accounts, closed: user `uN`'s newest `latest` is 150 + N.
    func makeStore(configuration: FileProfileStore.Configuration = .init()) throws {
        let builder = try SegmentCallBuilder()
        let store = try FileProfileStore(path: path, configuration: configuration)
        for index in 0..<200 { _ = try store.apply(builder.changes(for: FileProfileStoreTests.response(index))) }
        store.close()
    }

    func expectNewestProfiles(_ store: FileProfileStore, _ comment: Comment) throws {
        for user in 0..<50 {
            #expect(try store.user(.user("u\(user)"))?.traits["refiner_latest"] == .integer(Int64(150 + user)), comment)
        }
        for account in 0..<5 { #expect(try store.account(id: "a\(account)")?.traits.count == 40, comment) }
        #expect(store.recordCount == 55, comment)
    }

    @Test(arguments: Damage.allCases, [false, true])
    func aDamagedIndexIsRebuiltFromTheLog(damage: Damage, compactsFirst: Bool) throws {
        try makeStore()
        let logSize = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        var index = try ProfileIndexBytes(path: indexPath)
        try damage.apply(to: &index, logSize: logSize)
        try index.write(to: indexPath)

        let store = try FileProfileStore(path: path)
        if compactsFirst { try store.compact() }
        try expectNewestProfiles(store, "\(damage)")
        #expect(store.indexRebuilds == 1, "\(damage)")
        #expect(store.truncatedBytes == 0, "\(damage): the log is the truth, never cut for the index's sake")
        let builder = try SegmentCallBuilder()
        _ = try store.apply(builder.changes(for: FileProfileStoreTests.response(200)))
        store.close()

        let reopened = try FileProfileStore(path: path)
        #expect(reopened.indexRebuilds == 0, "\(damage): the rebuilt index is whole")
        #expect(try reopened.user(.user("u0"))?.traits["refiner_latest"] == .integer(200), "\(damage)")
    }

    /// What a power cut can leave of a store that synchronizes writes: the index's first page (its header)
    /// as the process last wrote it, a later page (a slot) as the last `fsync` of the index left it.
    @Test func aPowerCutThatKeepsTheHeaderButNotASlotLosesNoApply() throws {
        let configuration = FileProfileStore.Configuration(synchronizesWrites: true)
        try makeStore(configuration: configuration)
        let durable = try ProfileIndexBytes(path: indexPath)
        // A user whose slot is past the first page, so the two pages can part.
        let user = try #require(
            (0..<50).first { user in
                durable.slotPosition(of: .user("u\(user)")).map { $0 >= 8192 && $0 < durable.bytes.count - 4096 }
                    ?? false
            })
        let builder = try SegmentCallBuilder()
        let store = try FileProfileStore(path: path, configuration: configuration)
        _ = try store.apply(builder.changes(for: FileProfileStoreTests.response(200 + user)))
        let written = try ProfileIndexBytes(path: indexPath)  // what the page cache holds now
        store.close()

        var torn = durable
        torn.bytes.replaceSubrange(0..<4096, with: written.bytes[0..<4096])
        let slot = try #require(torn.slotPosition(of: .user("u\(user)")))
        #expect(torn.bytes[slot..<slot + 16] == durable.bytes[slot..<slot + 16])
        try torn.write(to: indexPath)

        let reopened = try FileProfileStore(path: path, configuration: configuration)
        #expect(try reopened.user(.user("u\(user)"))?.traits["refiner_latest"] == .integer(Int64(200 + user)))
        #expect(reopened.recordCount == 55)
        // And the next apply merges into the newest profile, not the stale one.
        _ = try reopened.apply(builder.changes(for: FileProfileStoreTests.response(250 + user)))
        #expect(
            try reopened.user(.user("u\(user)"))?.traits["refiner_answer_\(200 + user)"] == .integer(Int64(200 + user)))
    }

    /// The header moves at checkpoints, every 4 MiB of log: what a reopen after a crash replays stays bounded.
    @Test func theIndexIsCheckpointedAsTheLogGrows() throws {
        let builder = try SegmentCallBuilder()
        let store = try FileProfileStore(path: path)
        var logSize = 0
        var index = 0
        while logSize < 9 << 20 {
            _ = try store.apply(builder.changes(for: FileProfileStoreTests.response(index, accounts: 2)))
            index += 1
            if index % 100 == 0 {
                logSize = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            }
        }
        let covered = Int(try ProfileIndexBytes(path: indexPath).u64(at: ProfileIndexBytes.coveredField))
        logSize = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(covered >= 8 << 20, "\(covered) of \(logSize)")
        #expect(logSize - covered < 4 << 20 + 64 << 10, "\(covered) of \(logSize)")
        store.close()
        #expect(Int(try ProfileIndexBytes(path: indexPath).u64(at: ProfileIndexBytes.coveredField)) == logSize)
    }

    /// What `kill -9` leaves (the files as the page cache holds them, copied while the store is open):
    /// reopened, every apply is there and the count of records is right, new keys since the last checkpoint
    /// included.
    @Test func aStoreCopiedWhileOpenReopensWithEveryApplyAndTheRightCount() throws {
        let builder = try SegmentCallBuilder()
        let store = try FileProfileStore(path: path)
        for index in 0..<300 {
            _ = try store.apply(builder.changes(for: FileProfileStoreTests.response(index, users: 300)))
        }
        let copy = directory.appendingPathComponent("copy").path
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try FileManager.default.copyItem(atPath: indexPath, toPath: copy + ".index")
        store.close()

        let reopened = try FileProfileStore(path: copy)
        #expect(reopened.recordCount == 305)
        for user in stride(from: 0, to: 300, by: 7) {
            #expect(try reopened.user(.user("u\(user)"))?.traits["refiner_latest"] == .integer(Int64(user)))
        }
        _ = try reopened.apply(builder.changes(for: FileProfileStoreTests.response(300, users: 1_000)))
        #expect(reopened.recordCount == 306)
    }
}
