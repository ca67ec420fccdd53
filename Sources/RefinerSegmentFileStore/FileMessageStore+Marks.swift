import Foundation
import RefinerSegment

/// Marks: a caller's note of how far its input got, kept in the store with the units it covers, so that
/// "these units are stored" and "the input is read up to here" never disagree after a crash.
///
/// A mark is a record of its own, written after the last unit of an append in the same write
/// (``append(_:tenant:marks:)``), or a checkpoint entry (``setMark(_:)``, and whenever the segment holding
/// the latest mark is deleted: its units are settled, but the mark still says how far the input got). The
/// latest by sequence wins on open.
extension FileMessageStore {
    /// The latest mark, as ``markAtOpen`` would read it after a restart now.
    package var currentMark: [UInt8]? { mark?.bytes }

    /// Makes `bytes` the latest mark without appending units (an empty mark to say "none"), in the checkpoint.
    package func setMark(_ bytes: [UInt8]) throws {
        mark = Mark(sequence: nextSequence, bytes: bytes, segment: nil, isCheckpointed: false)
        nextSequence += 1
        try writeCheckpoint()
    }

    /// Drops the units appended after the latest mark: those of an append whose mark never reached the disk
    /// (the process died inside it, so no caller was told they were accepted). For a caller that reads its
    /// input again from the mark, and would record them a second time. Returns how many messages went.
    ///
    /// Call it before claiming (a fresh store): only ready units are dropped. Without a mark, nothing is.
    package func discardUnitsAfterMark() throws -> Int {
        guard let mark else { return 0 }
        var dropped = 0
        for number in tenants.indices {
            var keys: [UInt64] = []
            var index = tenants[number].entries.count - 1
            // Keys grow with sequence: the units after the mark are the tenant's last.
            while index >= tenants[number].head {
                let entry = tenants[number].entries[index]
                guard sequence(of: entry.key) > mark.sequence else { break }
                if entry.state == .ready {
                    keys.append(entry.key)
                    dropped += Int(entry.messages)
                }
                index -= 1
            }
            try acknowledge(keys.reversed(), tenant: number)
        }
        return dropped
    }

    /// Whether `segment` may be deleted now as far as the mark goes: it does not hold the only copy of the
    /// latest mark, or the checkpoint took it just now. False when the checkpoint could not be written (the
    /// segment then stays, its mark with it).
    func markAllowsDeleting(_ segment: UInt32) -> Bool {
        guard let mark, mark.segment == segment, !mark.isCheckpointed else { return true }
        return (try? writeCheckpoint()) != nil
    }

    /// The later of the checkpoint's mark and the latest mark record found in the segments.
    static func latestMark(checkpoint: Checkpoint, found: Mark?) -> Mark? {
        let kept = checkpoint.mark.map {
            Mark(sequence: $0.sequence, bytes: [UInt8]($0.bytes), segment: nil, isCheckpointed: true)
        }
        guard let found else { return kept }
        guard let kept, kept.sequence > found.sequence else { return found }
        return kept
    }
}

extension UnitCodec {
    /// What a mark's payload starts with where a unit's has its append time, which is never this.
    static let markTag = Int64.min

    static func markPayload(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: markTag.littleEndian) { Array($0) } + bytes
    }

    /// The mark's bytes when `payload` is a mark; `nil` for a unit.
    static func mark(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        guard payload.count >= 8, Int64(littleEndian: payload.loadUnaligned(as: Int64.self)) == markTag else {
            return nil
        }
        return [UInt8](UnsafeRawBufferPointer(rebasing: payload[8...]))
    }
}
