import RefinerSegment
import Testing

@testable import RefinerSegmentCLI

/// What `send` keeps of the units it read (``SendLedger``): without a store, everything until it settles (the
/// failed file gets what is left); with one, only what the store has not accepted (the store keeps the
/// rest, so a backlog on disk does not grow memory).
struct SendLedgerTests {
    static func unit(_ id: String) -> [SegmentMessage] {
        ["identify", "group"].map { SegmentMessage(kind: .init(rawValue: $0), messageID: "\(id)-\($0)", json: []) }
    }

    static func ids(_ units: [[SegmentMessage]]) -> [[String]] { units.map { $0.map(\.messageID) } }

    @Test func withoutAStoreAnAcceptedUnitIsKeptUntilItSettles() {
        let ledger = SendLedger()
        let first = ledger.add(Self.unit("a"))
        let second = ledger.add(Self.unit("b"))
        _ = ledger.add(Self.unit("c"))
        ledger.accepted(first)
        ledger.accepted(second)
        ledger.settleDelivered(["a-identify", "a-group"])
        #expect(Self.ids(ledger.settleFailed(Self.unit("b"))) == [["b-identify", "b-group"]])
        let left = ledger.takeAll()
        #expect(Self.ids(left.units) == [["c-identify", "c-group"]])
        #expect(left.notAccepted == 2)
    }

    @Test func withAStoreAnAcceptedUnitIsLetGoAndOutcomesChangeNothing() {
        let ledger = SendLedger(keepsAccepted: false)
        let first = ledger.add(Self.unit("a"))
        _ = ledger.add(Self.unit("b"))
        // The same messages read again and not accepted yet (the store was full): an outcome of the first
        // copy must not settle them, or a pipe's unaccepted unit would be missing from the failed file.
        _ = ledger.add(Self.unit("a"))
        ledger.accepted(first)
        ledger.settleDelivered(["a-identify", "a-group"])
        #expect(ledger.settleFailed(Self.unit("b")).isEmpty)
        let left = ledger.takeAll()
        #expect(Self.ids(left.units) == [["b-identify", "b-group"], ["a-identify", "a-group"]])
        #expect(left.notAccepted == 4)
    }
}
