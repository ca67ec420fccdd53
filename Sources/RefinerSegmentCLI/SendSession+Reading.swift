import RefinerSegment

extension SendSession {
    /// A unit read and not yet recorded: lone messages of one response read on lines of their own
    /// (`render`'s output, an old failed file), gathered while the next line is there to look at.
    struct PendingUnit {
        var serial: Int
        var key: String
        var location: String
        var messages: [SegmentMessage]
        /// The unit's last line, the input offset just past it and the digest of the input before that
        /// offset (for `--store`'s cursor). The digest is taken when the line is read: the tracker keeps the
        /// line ends of its last two chunks only, and a batch of long lines spans more.
        var lastLine = 0
        var endOffset = 0
        var endDigest: String?
    }

    /// Reads records until the input ends, a read fails or a stop is asked for, and records their messages.
    ///
    /// A record of several messages (a response's calls, a unit line of a failed file) is one unit. Lone
    /// messages of one response on consecutive lines are gathered into one unit too, but only while the next
    /// line can be read without waiting: on a live pipe nothing is held back for input that has not come.
    func read(_ input: any ByteSource) async -> ReadSummary {
        var reader = RecordReader(source: input)
        let repeated = RepeatedStrings()
        var summary = ReadSummary()
        var store: CollectedProfiles
        do {
            store = try CollectedProfiles.open(options.profilesPath, io: io)
        } catch {
            io.writeError("refiner-segment: \(error); nothing was read\n")
            summary.readFailed = true
            return summary
        }
        defer { store.close() }
        var pending: PendingUnit?
        /// `--store`: units read and not yet recorded, recorded together (one append, one cursor).
        var batch: [PendingUnit] = []
        defer { reading.withLock { $0.bytesRead = reader.bytesConsumed } }
        reading: while stopSignal == nil {
            if let unit = pending, !reader.canReadWithoutWaiting() {
                pending = nil
                guard await enqueue(unit, batch: &batch, summary: &summary) else { break reading }
            }
            if !batch.isEmpty, !reader.canReadWithoutWaiting() {
                guard await recordBatch(&batch, summary: &summary) else { break reading }
            }
            let step = summary.step(&reader, io: io)
            reading.withLock { $0.bytesRead = reader.bytesConsumed }
            guard case .record(let span, let bytes) = step else {
                if case .end = step { break }
                continue
            }
            let endOffset = reader.bytesConsumed
            let location = InputRecord.location(span)
            let messages: [SegmentMessage]
            do {
                messages = try Self.messages(of: bytes, repeated: repeated) {
                    try store.process($0, with: options.builder)
                }
            } catch let error as RefinerSegmentError where error.code == .unhandledEvent {
                // A webhook about something else than a completed survey: nothing to send, nothing wrong.
                io.writeError("\(location): ignored: \(error)\n")
                summary.ignored += 1
                continue
            } catch {
                summary.skipped += 1
                io.writeError("\(location): skipped: \(error)\n")
                if undelivered.isInPlace { undelivered.keep(unreadable: bytes) }
                continue
            }
            if storeMode?.isCovered(span.upperBound) == true {
                // Accepted by the earlier run this one resumes: read for the profiles, not recorded again.
                summary.covered += 1
                continue
            }
            // Read while the record's end is among the tracker's latest line ends.
            let endDigest = storeMode?.tracker?.digest(through: endOffset)?.hex
            let key = messages.count == 1 ? Self.responseKey(of: messages[0]) : nil
            if var unit = pending, let key, key == unit.key {
                ledger.extend(unit.serial, with: messages)
                unit.messages += messages
                unit.lastLine = span.upperBound
                unit.endOffset = endOffset
                unit.endDigest = endDigest
                pending = unit
                continue
            }
            if let unit = pending {
                pending = nil
                guard await enqueue(unit, batch: &batch, summary: &summary) else { break reading }
            }
            let serial = ledger.add(messages)
            let unit = PendingUnit(
                serial: serial, key: key ?? "", location: location, messages: messages, lastLine: span.upperBound,
                endOffset: endOffset, endDigest: endDigest)
            if key != nil {
                pending = unit
                continue
            }
            guard await enqueue(unit, batch: &batch, summary: &summary) else { break reading }
        }
        if let unit = pending, stopSignal == nil, !summary.storeFailed {
            _ = await enqueue(unit, batch: &batch, summary: &summary)
        }
        if !batch.isEmpty, stopSignal == nil, !summary.storeFailed {
            _ = await recordBatch(&batch, summary: &summary)
        }
        return summary
    }

    /// A record's messages, by its shape (``InputShape``): a response goes to `process` (the profile store
    /// of its run, or of its tenant), built messages pass through after validation.
    ///
    /// A response is read in one parse when it can be (``InputShape/onePassResponse(_:)``, as `render` reads
    /// it); anything else is told by its shape and read by that shape's decoder, so values and errors are
    /// those of the shape path. `send` and `send --tenants` both read through here.
    ///
    /// With `repeated`, strings that repeat the last response's are reused from it (``RepeatedStrings``).
    static func messages(
        of bytes: [UInt8], repeated: RepeatedStrings? = nil, process: (SurveyResponse) throws -> [SegmentMessage]
    ) throws -> [SegmentMessage] {
        if let response = InputShape.onePassResponse(bytes, repeated: repeated) { return try process(response) }
        // Only now can the bytes be invalid UTF-8 (the reader checks every byte of a record it reads): the
        // check picks the words for that.
        guard UTF8Validation.isValid(bytes) else {
            throw RefinerSegmentError(code: .invalidInput, detail: "not valid UTF-8")
        }
        let shape = InputShape(of: bytes)
        guard shape.isResponse else { return try shape.messages(from: bytes) }
        return try process(try shape.response(from: bytes))
    }

    /// Records a unit at once, or with `--store` adds it to the batch (recorded once full, or when the input
    /// would make the reader wait); false when the pipeline stopped on a signal.
    private func enqueue(_ unit: PendingUnit, batch: inout [PendingUnit], summary: inout ReadSummary) async -> Bool {
        guard storeMode != nil else { return await record(unit, summary: &summary) }
        guard !unit.messages.isEmpty else {
            // Nothing to store (the pipeline would pass over it, and the cursors would no longer line up).
            ledger.accepted(unit.serial)
            return true
        }
        batch.append(unit)
        return batch.count < Self.storeBatchUnits ? true : await recordBatch(&batch, summary: &summary)
    }

    /// Records a unit already in the ledger; false when the pipeline stopped on a signal (the unit stays in
    /// the ledger, for the failed file).
    private func record(_ unit: PendingUnit, summary: inout ReadSummary) async -> Bool {
        do {
            try await pipeline.record(unit.messages)
            ledger.accepted(unit.serial)
            return true
        } catch {
            if (error as? SegmentDeliveryError)?.code == .shutDown, stopSignal != nil { return false }
            ledger.remove(unit.serial)
            summary.skipped += 1
            io.writeError("\(unit.location): skipped: \(error)\n")
            return true
        }
    }

    /// What lone messages of one response share: their messageId without the call's suffix
    /// (`refiner-resp_1-identify`, `refiner-resp_1-group`, `refiner-resp_1-group-2` give `refiner-resp_1`).
    /// Only the library's own messageIds have one.
    static func responseKey(of message: SegmentMessage) -> String? {
        let id = message.messageID
        guard id.hasPrefix("refiner-") else { return nil }
        var body = Substring(id)
        // A split call's number: `-group-2`.
        if let dash = body.lastIndex(of: "-"), body[body.index(after: dash)...].allSatisfy(\.isNumber),
            body.index(after: dash) < body.endIndex
        {
            body = body[..<dash]
        }
        let suffix = "-" + message.kind.rawValue
        guard body.hasSuffix(suffix), body.count > "refiner-".count + suffix.count else { return nil }
        return String(body.dropLast(suffix.count))
    }
}
