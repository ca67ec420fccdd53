import RefinerSegment

/// Every message `send` has read and not yet seen delivered or failed, by unit, in the order read: what goes
/// to the failed file when the run stops, whatever the pipeline still holds.
///
/// A unit is what one input record gave (an identify and its group, a lone message): it is added before it
/// is recorded, so a unit waiting for room in the queue, or refused because the pipeline stopped, is here
/// too. Outcomes settle messages; the failed ones come back grouped by unit, so the failed file keeps units
/// on one line. Memory follows the pipeline's bounded queue: settled units are dropped.
final class SendLedger: Sendable {
    private let state = Locked(State())

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

    /// The pipeline accepted the unit.
    func accepted(_ serial: Int) {
        state.withLock { $0.units[serial]?.isAccepted = true }
    }

    /// The pipeline refused the unit (it is invalid): it is no longer tracked.
    func remove(_ serial: Int) {
        state.withLock { state in
            guard let unit = state.units.removeValue(forKey: serial) else { return }
            for message in unit.messages { Self.forget(message.messageID, serial: serial, in: &state) }
        }
    }

    /// Messages reached an end (delivered or failed); returns them grouped by unit, in order (for a failure),
    /// or nothing once everything was saved at a second interrupt.
    @discardableResult
    func settle(_ messages: [SegmentMessage]) -> [[SegmentMessage]] {
        state.withLock { state in
            guard !state.isSaved else { return [] }
            var groups: [(serial: Int, messages: [SegmentMessage])] = []
            for message in messages {
                let serial = state.unitsByMessage[message.messageID]?.first
                if let serial {
                    Self.forget(message.messageID, serial: serial, in: &state)
                    if var unit = state.units[serial], let index = unit.messages.firstIndex(of: message) {
                        unit.messages.remove(at: index)
                        state.units[serial] = unit.messages.isEmpty ? nil : unit
                    }
                }
                if let serial, let last = groups.last, last.serial == serial {
                    groups[groups.count - 1].messages.append(message)
                } else {
                    groups.append((serial ?? -1, [message]))
                }
            }
            return groups.map(\.messages)
        }
    }

    /// Takes everything unsettled out at once, unit by unit in the order read, with how many of those
    /// messages the pipeline never accepted: for the failed file at the end, or at a second interrupt. From
    /// then on nothing is tracked.
    func takeAll() -> (units: [[SegmentMessage]], notAccepted: Int) {
        state.withLock { state in
            let units = state.units.keys.sorted().compactMap { state.units[$0] }
            state.units = [:]
            state.unitsByMessage = [:]
            state.isSaved = true
            return (units.map(\.messages), units.filter { !$0.isAccepted }.reduce(0) { $0 + $1.messages.count })
        }
    }

    private static func forget(_ messageID: String, serial: Int, in state: inout State) {
        guard var serials = state.unitsByMessage[messageID], let index = serials.firstIndex(of: serial) else { return }
        serials.remove(at: index)
        state.unitsByMessage[messageID] = serials.isEmpty ? nil : serials
    }
}
