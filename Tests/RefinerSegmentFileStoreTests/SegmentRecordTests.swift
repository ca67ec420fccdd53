import Testing

@testable import RefinerSegmentFileStore

@Suite struct SegmentRecordTests {
    @Test(
        arguments: [
            ("", UInt32(0)), ("a", 0xC1D0_4330), ("123456789", 0xE306_9283),
            (String(repeating: "\u{0}", count: 32), 0x8A91_36AA),
        ] as [(String, UInt32)])
    func crc32cMatchesTheStandardCheckValues(text: String, expected: UInt32) {
        #expect(CRC32C.checksum(Array(text.utf8)) == expected)
        #expect(Array(text.utf8).withUnsafeBytes { CRC32C.softwareChecksum($0) } == expected)
    }

    /// The processor's instruction (where there is one) and the tables agree on every length around the
    /// eight-byte steps, at every alignment, and when continued from a previous checksum.
    @Test func crc32cInstructionAndTablesAgree() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBytes { all in
            for start in 0..<9 {
                for count in 0...(all.count - start - 8) where count < 40 || count % 17 == 0 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + count])
                    let seed = UInt32(truncatingIfNeeded: count &* 2_654_435_761)
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice), "\(start) +\(count)")
                    #expect(
                        CRC32C.checksum(slice, continuing: seed) == CRC32C.softwareChecksum(slice, continuing: seed),
                        "\(start) +\(count), continued")
                }
            }
        }
        print("CRC-32C instruction on this machine: \(CRC32C.hasInstruction)")
    }

    private func segment(_ count: Int) -> (bytes: [UInt8], records: [SegmentRecord], ends: [Int]) {
        var bytes: [UInt8] = []
        var records: [SegmentRecord] = []
        var ends: [Int] = []
        for index in 0..<count {
            let record = SegmentRecord(
                sequence: UInt64(100 + index), payload: Array("unit \(index) ".utf8) + Array(repeating: 7, count: index)
            )
            records.append(record)
            bytes += record.encoded()
            ends.append(bytes.count)
        }
        return (bytes, records, ends)
    }

    @Test func aWholeSegmentReadsBackEveryRecord() {
        let (bytes, records, _) = segment(20)
        let scan = SegmentScan.scan(bytes)
        #expect(scan.records.map(\.record) == records)
        #expect(scan.damage.isEmpty)
        #expect(scan.validEnd == bytes.count)
    }

    /// A crash cuts the last write anywhere: every record complete before the cut is read back, the rest
    /// is a torn tail reported with its size, and the file's good part ends where the last record does.
    @Test func aSegmentCutAtEveryByteOfItsLastRecordsKeepsEveryCompleteRecord() {
        let (bytes, records, ends) = segment(12)
        let firstCut = ends[8]
        for cut in firstCut...bytes.count {
            let scan = SegmentScan.scan(Array(bytes[..<cut]))
            let complete = ends.filter { $0 <= cut }.count
            #expect(scan.records.map(\.record) == Array(records.prefix(complete)), "cut at \(cut)")
            let end = complete == 0 ? 0 : ends[complete - 1]
            #expect(scan.validEnd == end, "cut at \(cut)")
            if cut == end {
                #expect(scan.damage.isEmpty, "cut at \(cut)")
            } else {
                #expect(scan.damage == [.init(offset: end, byteCount: cut - end, isTail: true)], "cut at \(cut)")
            }
        }
    }

    /// One flipped byte anywhere in a middle record loses that record only, reported as corrupt, never
    /// as a torn tail; every record after it is read back.
    @Test func oneFlippedByteInAMiddleRecordLosesThatRecordOnly() {
        let (bytes, records, ends) = segment(9)
        let victim = 4
        for position in ends[victim - 1]..<ends[victim] {
            var damaged = bytes
            damaged[position] ^= 0x5A
            let scan = SegmentScan.scan(damaged)
            var expected = records
            expected.remove(at: victim)
            #expect(scan.records.map(\.record) == expected, "flipped byte \(position)")
            #expect(
                scan.damage == [
                    .init(offset: ends[victim - 1], byteCount: ends[victim] - ends[victim - 1], isTail: false)
                ],
                "flipped byte \(position)")
            #expect(scan.validEnd == bytes.count)
        }
    }
}
