import RefinerSegment

/// Every message `send` has read and not yet seen delivered or failed, by unit, in the order read: what goes
/// to the failed file when the run stops, whatever the pipeline still holds.
///
/// A unit is what one input record gave (an identify and its group, a lone message): it is added before it
/// is recorded, so a unit waiting for room in the queue, or refused because the pipeline stopped, is here
/// too. Outcomes settle messages; the failed ones come back grouped by unit, so the failed file keeps units
/// on one line. Memory follows the pipeline's bounded queue: settled units are dropped.
///
/// With a durable store (`--store DIR`) an accepted unit is in the store, which writes its failures to the
/// failed file and keeps what is left, so the ledger lets it go at once (``init(keepsAccepted:)``): the
/// store's bound is on disk, and a tenant's backlog there must not grow memory with it.
final class SendLedger: Sendable {
    private let state = Locked(State())
    /// Whether accepted units stay until they settle (no store) or go when accepted (a store holds them).
    private let keepsAccepted: Bool

    /// A ledger that keeps accepted units until they settle when `keepsAccepted` (the messages live in
    /// memory only), or lets them go when accepted (a durable store keeps them).
    init(keepsAccepted: Bool = true) {
        self.keepsAccepted = keepsAccepted
    }

    private struct State: Sendable {
        var units: [Int: Unit] = [:]
        /// The unit of each unsettled message, by messageId (a list: an input may repeat a message).
        var unitsByMessage: [String: [Int]] = [:]
        var nextSerial = 0
        /// Set once everything was written out at a second interrupt: later settlements change nothing.
        var isSaved = false
    }

    private struct Unit: Sendable {
        var messages: [SegmentMessage]
        var isAccepted = false
    }

    /// Adds a unit about to be recorded; returns its serial number.
    func add(_ messages: [SegmentMessage]) -> Int {
        state.withLock { state in
            let serial = state.nextSerial
            state.nextSerial += 1
            guard !state.isSaved else { return serial }
            state.units[serial] = Unit(messages: messages)
            for message in messages { state.unitsByMessage[message.messageID, default: []].append(serial) }
            return serial
        }
    }

    /// Adds messages to a unit not yet recorded (a pending identify joined by its group).
    func extend(_ serial: Int, with messages: [SegmentMessage]) {
        state.withLock { state in
            guard state.units[serial] != nil else { return }
            state.units[serial]?.messages.append(contentsOf: messages)
            for message in messages { state.unitsByMessage[message.messageID, default: []].append(serial) }
        }
    }

    /// The pipeline accepted the unit: it is kept until it settles, or let go when a store keeps it.
    func accepted(_ serial: Int) {
        guard keepsAccepted else { return remove(serial) }
        state.withLock { $0.units[serial]?.isAccepted = true }
    }

    /// The pipeline refused the unit (it is invalid): it is no longer tracked.
    func remove(_ serial: Int) {
        state.withLock { state in
            guard let unit = state.units.removeValue(forKey: serial) else { return }
            for message in unit.messages { Self.forget(message.messageID, serial: serial, in: &state) }
        }
    }

    /// Delivered messages, by messageId, are settled. With a store it holds no accepted unit, and outcomes
    /// are only of accepted ones: nothing to do (a unit read again with the same ids stays).
    func settleDelivered(_ messageIDs: [String]) {
        guard keepsAccepted else { return }
        state.withLock { state in
            guard !state.isSaved else { return }
            for id in messageIDs { _ = Self.settle(id, in: &state) }
        }
    }

    /// Failed messages are settled; returns them grouped by unit, in order, for the failed file, or nothing
    /// once everything was saved at a second interrupt, or with a store (it wrote them to the failed file).
    func settleFailed(_ messages: [SegmentMessage]) -> [[SegmentMessage]] {
        guard keepsAccepted else { return [] }
        return state.withLock { state in
            guard !state.isSaved else { return [] }
            var groups: [(serial: Int, messages: [SegmentMessage])] = []
            for message in messages {
                let serial = Self.settle(message.messageID, in: &state)
                if let serial, let last = groups.last, last.serial == serial {
                    groups[groups.count - 1].messages.append(message)
                } else {
                    groups.append((serial ?? -1, [message]))
                }
            }
            return groups.map(\.messages)
        }
    }

    /// Removes one message (the first unsettled one with this id) from its unit; returns the unit's serial.
    private static func settle(_ messageID: String, in state: inout State) -> Int? {
        guard let serial = state.unitsByMessage[messageID]?.first else { return nil }
        forget(messageID, serial: serial, in: &state)
        if var unit = state.units[serial], let index = unit.messages.firstIndex(where: { $0.messageID == messageID }) {
            unit.messages.remove(at: index)
            state.units[serial] = unit.messages.isEmpty ? nil : unit
        }
        return serial
    }

    /// Everything unsettled, taken out at once (``takeAll()``).
    struct Taken {
        /// Every unit, in the order read (with a store, only ones it never accepted: it let the rest go).
        var units: [[SegmentMessage]]
        /// How many messages of those the pipeline never accepted.
        var notAccepted: Int

        /// What the failed file gets: every unit without a store. With one, what it accepted is in it, and
        /// the ledger holds only what it did not: that is after the cursor of a file (a re-run reads it
        /// again), but a pipe cannot be read again, so a pipe's units (read while the store was full, and
        /// the run stopped) go to the failed file.
        func forFailedFile(_ storeMode: StoreMode?) -> [[SegmentMessage]] {
            guard let storeMode else { return units }
            return storeMode.tracker == nil ? units : []
        }
    }

    /// Takes everything unsettled out at once, unit by unit in the order read, with how many of those
    /// messages the pipeline never accepted: for the failed file at the end, or at a second interrupt. From
    /// then on nothing is tracked.
    func takeAll() -> Taken {
        state.withLock { state in
            let units = state.units.keys.sorted().compactMap { state.units[$0] }
            state.units = [:]
            state.unitsByMessage = [:]
            state.isSaved = true
            let notAccepted = units.reduce(0) { $0 + ($1.isAccepted ? 0 : $1.messages.count) }
            return Taken(units: units.map(\.messages), notAccepted: notAccepted)
        }
    }

    private static func forget(_ messageID: String, serial: Int, in state: inout State) {
        guard var serials = state.unitsByMessage[messageID], let index = serials.firstIndex(of: serial) else { return }
        serials.remove(at: index)
        state.unitsByMessage[messageID] = serials.isEmpty ? nil : serials
    }
}
