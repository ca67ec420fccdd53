import Foundation
import RefinerSegment
import RefinerSegmentFileStore

/// What `send --store DIR` adds to a run: the durable store the pipeline keeps its messages in, and the
/// input cursor that lets a re-run of the same input skip what an earlier run already accepted.
///
/// The rules (Docs/Delivery.md, "send --store"):
/// - The run sends what the store holds first (the pipeline claims from the front), then the input.
/// - A regular file (`send --store DIR FILE`, or `< FILE`) is resumed: when its first bytes are exactly
///   the ones the cursor was written for, its records up to the cursor's line are read (so the collected
///   profiles are what one run would have) but not recorded again. Any other file is read from its start,
///   and the cursor then follows it.
/// - A pipe or a terminal cannot be checked before it is read: it is read in full and keeps no cursor
///   (the cursor of an earlier file is left alone: its units carry that cursor again).
/// - The cursor lives in the store (``SendStore``); it is cleared (an empty mark, and its copy removed) once
///   a run read its input to the end and the store is empty: the job is done.
struct StoreMode: Sendable {
    let store: SendStore
    let directory: String
    /// Where the input's digest comes from, for a regular file; `nil` for a pipe or a terminal.
    let tracker: InputTracker?
    /// Where an earlier run of this same input stopped.
    let resume: InputCursor?
    let inputName: String
    /// Notes for the start of the run (another input's cursor, a pipe that is not resumed).
    let notes: [String]

    /// Opens the store and decides whether the input resumes an earlier run.
    ///
    /// - Throws: ``ToolError`` when the store is another process's, or cannot be opened.
    init(directory: String, undelivered: UndeliveredSink, input: any ByteSource, inputName: String) throws {
        try self.init(
            store: SendStore(directory: directory, undelivered: undelivered), input: input, inputName: inputName)
    }

    /// Decides whether the input resumes the earlier run whose cursor `store` holds (`send --tenants`
    /// opens its store with a failed file per tenant).
    init(store: SendStore, input: any ByteSource, inputName: String) {
        self.store = store
        let directory = store.directory
        self.directory = directory
        self.inputName = inputName
        let (cursor, problem) = InputCursor.decode(mark: store.base.markAtOpen)
        var notes: [String] = []
        if let problem { notes.append("\(problem); the input is read from its start") }
        guard let file = input as? FileHandleSource, file.byteCount != nil else {
            tracker = nil
            resume = nil
            notes.append(
                "the input is not a regular file: it is read in full and keeps no cursor in \(directory) (give "
                    + "the input as FILE for a re-run to skip what was accepted)")
            self.notes = notes
            return
        }
        tracker = InputTracker()
        if let cursor {
            let digest = InputDigest.ofFile(descriptor: file.handle.fileDescriptor, count: cursor.byteOffset)
            if digest?.hex == cursor.digest {
                var cursor = cursor
                if let beyond = cursor.beyond,
                    InputDigest.ofFile(descriptor: file.handle.fileDescriptor, count: beyond.byteOffset)?.hex
                        != beyond.digest
                {
                    // The file changed after the cursor's line: the records stored past it were another
                    // input's (they stay in the store); this one's are read and recorded.
                    cursor.beyond = nil
                }
                resume = cursor
                notes.append(
                    "\(inputName) resumes the run that stopped after \(cursor.summary): records up to that line "
                        + "\(cursor.beyond == nil ? "" : "and those named after it ")were accepted then and are not "
                        + "sent again")
            } else {
                resume = nil
                notes.append(
                    "\(directory) held a cursor for another input (\(cursor.summary)); \(inputName) is read from its "
                        + "start")
            }
        } else {
            resume = nil
        }
        self.notes = notes
    }

    /// The input as the reader should see it: through the tracker, for a regular file.
    func tracked(_ input: any ByteSource) -> any ByteSource {
        guard let tracker else { return input }
        return TrackedSource(base: input, tracker: tracker)
    }

    /// Whether the record ending on `line` was accepted by the earlier run this one resumes.
    func isCovered(_ line: Int) -> Bool {
        resume?.covers(line) ?? false
    }

    /// The records the earlier run accepted past its cursor's line (``InputCursor/beyond``): every cursor
    /// this run writes names those still past it, or a second re-run would record them again.
    var inherited: InputCursor.Beyond? { resume?.beyond }

    /// Names the cursor of each unit about to be recorded, in order: an append of the first k of them writes
    /// the k-th one's. Each cursor is the one taken when the unit's last line was read
    /// (``SendSession/PendingUnit/endDigest``); looked up now, a unit early in a batch of long lines would
    /// have none, and the append would write an older cursor (a re-run would record those units again).
    func prepare(_ units: some Collection<SendSession.PendingUnit>) {
        let cursors = units.map { unit -> InputCursor? in
            guard tracker != nil, let digest = unit.endDigest else { return nil }
            return InputCursor(
                input: inputName, line: unit.lastLine, byteOffset: unit.endOffset, digest: digest,
                beyond: StoreWindow.remaining(inherited, after: unit.lastLine))
        }
        prepare(cursors: cursors)
    }

    /// Names the cursor of each unit about to be recorded, in order (``StoreWindow/cursors(keepsCursor:inherited:inputName:)``).
    func prepare(cursors: [InputCursor?]) {
        store.nextCursors.withLock { $0 = cursors }
    }

    /// Why the copy of the cursor could not be written, the first time.
    func takeCursorFailure() -> String? {
        store.cursorFailure.withLock { failure in
            defer { failure = nil }
            return failure
        }
    }

    /// Prints what the run starts with: the notes, and how many messages an earlier run left. When the run
    /// resumes, first drops what an append cut short left after the cursor: it is read again from the input.
    /// Before the pipeline runs.
    func announce(tenant: String, io: ToolIO) async {
        let held = await announce(tenants: [tenant], io: io)[tenant] ?? 0
        if held > 0 {
            io.writeError(
                "refiner-segment: \(directory) holds \(held) messages from an earlier run: they are sent first\n")
        }
    }

    /// As ``announce(tenant:io:)`` without the line on what is held: returns how many messages the store
    /// holds for each of `tenants` (after the drop), for the caller to say.
    func announce(tenants: [String], io: ToolIO) async -> [String: Int] {
        for note in notes { io.writeError("refiner-segment: \(note)\n") }
        if resume != nil {
            do {
                let dropped = try await store.base.discardUnitsAfterMark()
                if dropped > 0 {
                    io.writeError(
                        "refiner-segment: \(directory) held \(dropped) messages of an append the earlier run did not "
                            + "finish: they are dropped and read again from \(inputName)\n")
                }
            } catch {
                io.writeError(
                    "refiner-segment: \(error): what an unfinished append left in \(directory) may be sent twice\n")
            }
        }
        var held: [String: Int] = [:]
        for tenant in tenants { held[tenant] = (try? await store.usage(tenant: tenant).messages) ?? 0 }
        return held
    }

    /// After the pipeline stopped: how many messages the store still holds, and a sentence for the summary.
    /// Removes the cursor when the job is done (the input was read to its end, the store is empty).
    func end(tenant: String, inputComplete: Bool) async -> (left: Int, note: String?) {
        let (held, failure) = await end(tenants: [tenant], inputComplete: inputComplete)
        let left = held[tenant] ?? 0
        return (left, left > 0 ? leftNote(left, inputComplete: inputComplete) : failure)
    }

    /// As ``end(tenant:inputComplete:)`` for every tenant of a run: what the store still holds for each,
    /// and why the cursor could not be cleared, if it could not. The job is done only when it holds nothing
    /// for any of them.
    func end(tenants: [String], inputComplete: Bool) async -> (left: [String: Int], failure: String?) {
        var left: [String: Int] = [:]
        for tenant in tenants { left[tenant] = (try? await store.usage(tenant: tenant).messages) ?? 0 }
        guard left.values.allSatisfy({ $0 == 0 }), inputComplete, tracker != nil else { return (left, nil) }
        do {
            try await store.base.setMark([])
            try InputCursor.remove(in: directory)
        } catch {
            return (left, "\(error)")
        }
        return (left, nil)
    }

    /// The summary's sentence for `left` messages still in the store. A pipe has no cursor to resume at: what
    /// it read and the store did not take is in the failed file.
    func leftNote(_ left: Int, inputComplete: Bool) -> String {
        let what = inputComplete || tracker == nil ? "" : " (and the input after the last line accepted)"
        return "\(left) messages left in \(directory): the next send --store \(directory) sends them first\(what)"
    }
}

extension SendSession {
    /// How many units `--store` records at once at most: one append (one `fsync`) and one cursor for them.
    static let storeBatchUnits = 256

    /// Records the batch's units in one call (``SegmentPipeline/record(contentsOf:)``); a unit the pipeline
    /// refuses as too large is skipped and reported, as one at a time would be. False when the pipeline
    /// stopped on a signal, or the store failed (``ReadSummary/isSkippable(_:)``): the units left stay in
    /// the ledger, after the cursor (the re-run reads them again) or, from a pipe, for the failed file.
    func recordBatch(_ batch: inout [PendingUnit], summary: inout ReadSummary) async -> Bool {
        guard let storeMode else { return true }
        var rest = batch[...]
        batch = []
        while !rest.isEmpty {
            storeMode.prepare(rest)
            let before = await pipeline.counters.accepted
            do {
                try await pipeline.record(contentsOf: rest.map(\.messages))
                for unit in rest { ledger.accepted(unit.serial) }
                rest = []
            } catch {
                // The units before the one that failed were accepted: as many messages as the counter moved.
                var accepted = await pipeline.counters.accepted - before
                while let unit = rest.first, unit.messages.count <= accepted {
                    accepted -= unit.messages.count
                    ledger.accepted(unit.serial)
                    rest.removeFirst()
                }
                if (error as? SegmentDeliveryError)?.code == .shutDown, stopSignal != nil { return false }
                if let unit = rest.first, !ReadSummary.isSkippable(error) {
                    summary.stopOnStoreFailure(
                        error, at: unit.location, keepsCursor: storeMode.tracker != nil, io: io)
                    return false
                }
                if let unit = rest.popFirst() {
                    ledger.remove(unit.serial)
                    summary.skipped += 1
                    io.writeError("\(unit.location): skipped: \(error)\n")
                }
            }
            if let failure = storeMode.takeCursorFailure() {
                // Only the copy: the store keeps the cursor itself, so reading goes on.
                io.writeError("refiner-segment: \(failure) (a copy for reading; the store keeps the cursor)\n")
            }
        }
        return true
    }
}
