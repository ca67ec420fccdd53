import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentURLSession

/// One run of `refiner-segment send --tenants FILE`: many workspaces in one run, through one
/// ``SegmentPipelineGroup``.
///
/// Each record names its tenant in a top-level `"tenant"` field (`--tenant NAME` for records without one,
/// such as webhook payloads, already-built messages and failed files); a record naming a tenant that FILE
/// does not hold is skipped with its line number. Every tenant has its own pipeline (queue, retries,
/// `Retry-After` pause), so one tenant's outage or 429 does not slow the others (its backlog waits in its
/// queue: 64 MiB of JSON in memory, or up to the store's bound with `--store`); progress lines and the
/// summary are per tenant; and each tenant's undelivered messages go to a failed file of its own, the
/// `--failed` path with the tenant's name before the extension (`refiner-segment-failed.acme.jsonl`), which
/// `send --tenants FILE --tenant acme refiner-segment-failed.acme.jsonl` sends again. Write keys are never
/// printed.
///
/// A first stop signal stops reading and delivers for ``SendSession/interruptionGrace``; what is left goes
/// to the failed files and the exit status is 128 + the signal. A second signal writes the failed files at
/// once and exits.
final class TenantSendSession: Sendable {
    /// The settings of a `send --tenants` run, from its command line and environment.
    struct Settings {
        static let valued = SendOptions.valued.union(["--tenants", "--tenant"])

        var tenants: TenantsFile
        var defaultTenant: String?
        var retry: SegmentRetryPolicy
        var builder: SegmentCallBuilder.Configuration
        var failedPath: String
        var inputPath: String?
        /// `--store DIR`: one durable store for every tenant, and the input cursor (``StoreMode``).
        var storePath: String?

        init(_ arguments: [String], environment: [String: String], readFile: (String) throws -> [UInt8]) throws {
            let options = try Options(arguments, valued: Self.valued, flags: ["--track"])
            guard options.positional.count <= 1 else { throw UsageError("send takes at most one FILE") }
            guard let path = options.values["--tenants"] else { throw UsageError("--tenants needs a FILE") }
            for option in ["--region", "--endpoint"] where options.values[option] != nil {
                throw UsageError("with --tenants, each tenant's region or endpoint is in FILE: \(option) is not taken")
            }
            if options.values["--profiles"] != nil {
                throw UsageError("--profiles is not taken with --tenants (profiles are kept in memory, per tenant)")
            }
            storePath = options.values["--store"]
            if storePath?.isEmpty == true { throw UsageError("--store takes a directory") }
            let bytes: [UInt8]
            do {
                bytes = try readFile(path)
            } catch {
                throw UsageError("--tenants \(path): cannot be read")
            }
            tenants = try TenantsFile(bytes: bytes, path: path, environment: environment)
            defaultTenant = options.values["--tenant"]
            if let name = defaultTenant, tenants.tenants[name] == nil {
                throw UsageError("--tenant '\(LogText.singleLine(name))' is not a tenant of \(path)")
            }
            retry = SegmentRetryPolicy()
            if let duration = try options.maximumRetryDuration() { retry.maximumRetryDuration = duration }
            builder = try options.callBuilder().configuration
            failedPath = options.values["--failed"] ?? RefinerSegmentTool.defaultFailedFile
            inputPath = options.positional.first
        }
    }

    /// One tenant's share of the run: what it read and not yet settled, and where its failures go.
    struct Part: Sendable {
        /// Every unit read and not settled; with a store, only until the store accepts it.
        let ledger: SendLedger
        let undelivered: UndeliveredSink
        let builder: SegmentCallBuilder
    }

    /// A tenant's progress, for its lines and its summary.
    struct Tally: Sendable {
        var delivered = 0
        var failed = 0
        var retries = 0
    }

    /// How many bytes of message JSON a tenant's queue holds without a store: 64 MiB (with one, the group's
    /// 256 MiB, on disk).
    static let queueBytesInMemory = 64 << 20

    let io: ToolIO
    let options: Settings
    let group: SegmentPipelineGroup
    let parts: [String: Part]
    let tallies = Locked([String: Tally]())
    let stopSignal = Locked<Int32?>(nil)
    /// `--store DIR`: the one store every tenant's messages wait in, and the input cursor; `nil` keeps
    /// messages in memory.
    let storeMode: StoreMode?

    init(io: ToolIO, options: Settings, transport: some SegmentTransport, input: any ByteSource) throws {
        self.io = io
        self.options = options
        var parts: [String: Part] = [:]
        for name in options.tenants.names {
            let path = TenantsFile.failedPath(options.failedPath, tenant: name)
            let file = try io.openFailedFile(path, input.fileIdentity)
            if file.isInPlace, options.storePath != nil { throw UsageError(SendSession.inPlaceWithStore(path)) }
            let builder: SegmentCallBuilder
            do {
                builder = try SegmentCallBuilder(configuration: options.builder)
            } catch {
                throw UsageError(error.detail)
            }
            parts[name] = Part(
                ledger: SendLedger(keepsAccepted: options.storePath == nil),
                undelivered: UndeliveredSink(path: path, file: file, io: io), builder: builder)
        }
        self.parts = parts
        let sinks = parts.mapValues(\.undelivered)
        storeMode = try options.storePath.map { directory in
            StoreMode(
                store: try SendStore(directory: directory) { sinks[$0] }, input: input,
                inputName: options.inputPath ?? "standard input")
        }
        let tenants = options.tenants.tenants
        let retry = options.retry
        let configuration = SegmentPipelineGroup.Configuration(
            idleTimeout: nil, gracePeriod: SendSession.interruptionGrace)
        // One reading loop feeds every tenant, so a tenant that is down or paused holds up the reading of the
        // others' lines once its queue is full. With a store the backlog waits on disk: a tenant's queue may
        // take the whole of the group's byte bound (256 MiB of message JSON, the store's bound too). Without
        // one it waits in memory, where a message costs about 2.5 times its JSON: 64 MiB of JSON (four times
        // the pipeline's default, and no count of messages) keeps the run's memory within about 200 MB more.
        let queue = SegmentPipeline.QueueLimits(
            maximumMessages: Int(Int32.max),
            maximumBytes: storeMode == nil ? Self.queueBytesInMemory : configuration.maximumBytes)
        do {
            group = try SegmentPipelineGroup(
                transport: transport, configuration: configuration, store: storeMode?.store
            ) {
                name in
                guard let tenant = tenants[name] else { return nil }
                return .init(
                    writeKey: tenant.writeKey, pipeline: .init(endpoint: tenant.endpoint, retry: retry, queue: queue))
            }
        } catch {
            throw UsageError("\(error)")
        }
    }

    /// Runs the session to its end and returns the exit status.
    func run(_ input: any ByteSource) async -> Int32 {
        if let problem = await storeProblem() {
            io.writeError("refiner-segment: \(problem)\n")
            return RefinerSegmentTool.failure
        }
        let outcomes = await group.outcomes(bufferingPolicy: .unbounded)
        let interruptions = io.interruptions()
        return await withTaskGroup(of: Void.self, returning: Int32.self) { tasks in
            tasks.addTask { await self.watch(interruptions) }
            let held = await openHeld()
            async let running: Void = runGroup()
            async let reported: Void = report(outcomes)
            let summary = await read(storeMode?.tracked(input) ?? input)
            // After each tenant's recovery: a flush before it would not wait for what the store held for the
            // tenant (a drain with /dev/null, a re-run whose input was all accepted before).
            if stopSignal.withLock({ $0 }) == nil { await group.flushAfterRecovery() }
            group.triggerGracefulShutdown()
            await running
            await reported
            let left = await storeMode?.end(
                tenants: options.tenants.names, inputComplete: stopSignal.withLock({ $0 }) == nil && !summary.readFailed
            )
            let status = await finish(summary, held: held, left: left)
            tasks.cancelAll()
            return status
        }
    }

    /// Why the store cannot serve this run: it holds messages of a tenant the tenants file does not name
    /// (they would wait there unsent, and their job would never be done). Nothing is sent or deleted.
    private func storeProblem() async -> String? {
        guard let storeMode else { return nil }
        let status: FileMessageStore.Status
        do {
            status = try await storeMode.store.base.status()
        } catch {
            return "--store \(storeMode.directory): \(error)"
        }
        let unknown = status.tenants.filter { $0.messages > 0 && options.tenants.tenants[$0.name] == nil }
        guard !unknown.isEmpty else { return nil }
        let named = unknown.map { "\($0.messages) of tenant '\(LogText.singleLine($0.name))'" }
        return "--store \(storeMode.directory) holds messages of tenants that the --tenants file does not name "
            + "(\(named.joined(separator: ", "))): add them back to it to send them; nothing was sent or deleted"
    }

    /// With a store: prints what the run starts with, and opens every tenant the store holds messages for
    /// (they are sent first, whether or not the input names the tenant again). The messages held, by tenant.
    private func openHeld() async -> [String: Int] {
        guard let storeMode else { return [:] }
        let held = await storeMode.announce(tenants: options.tenants.names, io: io)
        let holding = options.tenants.names.filter { (held[$0] ?? 0) > 0 }
        guard !holding.isEmpty else { return held }
        let total = holding.reduce(0) { $0 + (held[$1] ?? 0) }
        let each = holding.map { "\($0) \(held[$0] ?? 0)" }.joined(separator: ", ")
        io.writeError(
            "refiner-segment: \(storeMode.directory) holds \(total) messages from an earlier run (\(each)): they are "
                + "sent first\n")
        for tenant in holding {
            do {
                try await group.open(tenant: tenant)
            } catch {
                io.writeError("refiner-segment: \(error); its messages stay in \(storeMode.directory)\n")
            }
        }
        return held
    }

    private func runGroup() async {
        do {
            try await group.run()
        } catch {
            io.writeError("refiner-segment: \(error)\n")
        }
    }

    private func watch(_ interruptions: AsyncStream<Int32>) async {
        for await number in interruptions {
            let first = stopSignal.withLock { signal -> Bool in
                defer { if signal == nil { signal = number } }
                return signal == nil
            }
            let name = SignalListener.name(of: number)
            if first {
                let whereTo = storeMode.map { "stay in \($0.directory)" } ?? "go to the failed files"
                io.writeError("refiner-segment: \(name) received: stopping; undelivered messages \(whereTo)\n")
                group.triggerGracefulShutdown()
                continue
            }
            var text = "refiner-segment: \(name) received again: stopping at once"
            for tenant in options.tenants.names {
                guard let part = parts[tenant] else { continue }
                // With a store, what was accepted is in it, and what was not is after the cursor (or, from a
                // pipe, in the failed file).
                part.undelivered.save(part.ledger.takeAll().forFailedFile(storeMode))
                _ = part.undelivered.finish(InputProgress(isComplete: false, bytesConsumed: 0))
                if let written = part.undelivered.summary { text += "; \(tenant): " + written }
            }
            if let storeMode { text += "; what was accepted stays in \(storeMode.directory) for the next run" }
            io.writeError(text + "\n")
            let lost = parts.values.contains { $0.undelivered.lost > 0 }
            io.exit(lost ? RefinerSegmentTool.abandoned : 128 + (stopSignal.withLock { $0 } ?? number))
        }
    }

    /// Per-tenant progress lines, and failures appended to the tenant's failed file as they come.
    private func report(_ outcomes: AsyncStream<SegmentTenantOutcome>) async {
        for await named in outcomes {
            let tenant = named.tenant
            guard let part = parts[tenant] else { continue }
            let event: String
            let tally = tallies.withLock { tallies -> Tally in
                var tally = tallies[tenant, default: Tally()]
                switch named.outcome {
                case .delivered(let ids, _): tally.delivered += ids.count
                case .failed(let messages, _): tally.failed += messages.count
                case .retrying: tally.retries += 1
                case .handedBack: break
                }
                tallies[tenant] = tally
                return tally
            }
            switch named.outcome {
            case .delivered(let ids, _):
                part.ledger.settleDelivered(ids)
                event = "delivered \(ids.count) messages"
            case .failed(let messages, let reason):
                let units = part.ledger.settleFailed(messages)
                // With a store, it wrote them to the tenant's failed file before it settled them (SendStore).
                if storeMode == nil { part.undelivered.save(units) }
                event = "failed \(messages.count) messages: \(reason)"
            case .retrying(let ids, let retryCount, let delay, let reason):
                event = "retry \(retryCount) of \(ids.count) messages in \(SendProgress.seconds(delay)): \(reason)"
            case .handedBack(let messages):
                // They stay in the ledger: the failed file gets them at the end (or they stay in the store).
                event = "\(messages.count) messages not sent before the run stopped"
            }
            io.writeError(
                "refiner-segment: \(tenant): \(event) (\(tenant): delivered \(tally.delivered), retried "
                    + "\(tally.retries), failed \(tally.failed))\n")
        }
    }

    /// What the reading loop found: the same counts as a single-tenant `send`.
    typealias ReadSummary = SendSession.ReadSummary

    /// A unit read and not yet recorded: lone messages of one response on lines of their own are gathered
    /// while the next line is there to look at, as a single-tenant `send` does.
    private struct Pending {
        var tenant: String
        var serial: Int
        var key: String
        var location: String
        var messages: [SegmentMessage]
        /// The line its first record ends on, its last line, the input offset just past it and the digest
        /// of the input before that offset (for `--store`'s cursor).
        var firstLine: Int
        var lastLine: Int
        var endOffset: Int
        var endDigest: String?

        var windowUnit: StoreWindow.Unit {
            StoreWindow.Unit(
                tenant: tenant, lines: firstLine...lastLine, endOffset: endOffset, endDigest: endDigest)
        }
    }

    private func read(_ input: any ByteSource) async -> ReadSummary {
        var reader = RecordReader(source: input)
        var summary = ReadSummary()
        var profiles: [String: CollectedProfiles] = [:]
        var pending: Pending?
        /// `--store`: units read and not yet recorded (a window), recorded tenant by tenant (``StoreWindow``).
        var batch: [Pending] = []
        while stopSignal.withLock({ $0 }) == nil, !summary.storeFailed {
            if let unit = pending, !reader.canReadWithoutWaiting() {
                pending = nil
                await enqueue(unit, batch: &batch, summary: &summary)
            }
            if !batch.isEmpty, !reader.canReadWithoutWaiting() { await recordBatch(&batch, summary: &summary) }
            let step = summary.step(&reader, io: io)
            guard case .record(let span, let bytes) = step else {
                if case .end = step { break }
                continue
            }
            let endOffset = reader.bytesConsumed
            let location = InputRecord.location(span)
            let tenant: String
            do {
                tenant = try self.tenant(of: bytes)
            } catch {
                summary.skipped += 1
                io.writeError("\(location): skipped: \(error)\n")
                continue
            }
            guard let part = parts[tenant] else { continue }
            let messages: [SegmentMessage]
            do {
                messages = try SendSession.messages(of: bytes) { response in
                    if profiles[tenant] == nil { profiles[tenant] = try CollectedProfiles.open(nil, io: io) }
                    return try profiles[tenant]!.process(response, with: part.builder)
                }
            } catch let error as RefinerSegmentError where error.code == .unhandledEvent {
                io.writeError("\(location): ignored: \(error)\n")
                summary.ignored += 1
                continue
            } catch {
                summary.skipped += 1
                io.writeError("\(location): skipped: \(error)\n")
                if part.undelivered.isInPlace { part.undelivered.keep(unreadable: bytes) }
                continue
            }
            if storeMode?.isCovered(span.upperBound) == true {
                // Accepted by the earlier run this one resumes: read for the profiles, not recorded again.
                summary.covered += 1
                continue
            }
            // Read while the record's end is among the tracker's latest line ends.
            let endDigest = storeMode?.tracker?.digest(through: endOffset)?.hex
            let key = messages.count == 1 ? SendSession.responseKey(of: messages[0]) : nil
            if var unit = pending, let key, key == unit.key, unit.tenant == tenant {
                part.ledger.extend(unit.serial, with: messages)
                unit.messages += messages
                unit.lastLine = span.upperBound
                unit.endOffset = endOffset
                unit.endDigest = endDigest
                pending = unit
                continue
            }
            if let unit = pending {
                pending = nil
                await enqueue(unit, batch: &batch, summary: &summary)
            }
            let unit = Pending(
                tenant: tenant, serial: part.ledger.add(messages), key: key ?? "", location: location,
                messages: messages, firstLine: span.upperBound, lastLine: span.upperBound, endOffset: endOffset,
                endDigest: endDigest)
            if key != nil {
                pending = unit
            } else {
                await enqueue(unit, batch: &batch, summary: &summary)
            }
        }
        if let unit = pending, stopSignal.withLock({ $0 }) == nil, !summary.storeFailed {
            await enqueue(unit, batch: &batch, summary: &summary)
        }
        if !batch.isEmpty, stopSignal.withLock({ $0 }) == nil, !summary.storeFailed {
            await recordBatch(&batch, summary: &summary)
        }
        for store in profiles.values { store.close() }
        summary.bytesConsumed = reader.bytesConsumed
        return summary
    }

    /// The record's tenant: its top-level `"tenant"` field, else `--tenant`.
    ///
    /// - Throws: ``ToolError`` for a record without a tenant, a `tenant` that is not a string, or a tenant
    ///   the `--tenants` file does not hold.
    func tenant(of bytes: [UInt8]) throws -> String {
        var named: String?
        // Only an object can name its tenant; the cheap scan keeps the JSON pass for records that may.
        if bytes.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }) == UInt8(ascii: "{"),
            bytes.contains(UInt8(ascii: "t")), String(decoding: bytes, as: UTF8.self).contains("\"tenant\"")
        {
            if let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                let value = object["tenant"]
            {
                guard let text = value as? String else { throw ToolError("the \"tenant\" field is not a string") }
                named = text
            }
        }
        guard let tenant = named ?? options.defaultTenant else {
            throw ToolError("the record names no tenant (no \"tenant\" field, and no --tenant was given)")
        }
        guard parts[tenant] != nil else {
            throw ToolError("unknown tenant '\(LogText.singleLine(tenant))': it is not in the --tenants file")
        }
        return tenant
    }

    /// Records a unit at once, or with `--store` adds it to the window: units of any tenants, recorded once
    /// full or when the input would make the reader wait, tenant by tenant (``StoreWindow``: one append and
    /// one `fsync` for each tenant in the window), each append carrying the cursor that says exactly which
    /// records are stored, so a re-run never records a unit twice nor skips one that is not stored.
    private func enqueue(_ unit: Pending, batch: inout [Pending], summary: inout ReadSummary) async {
        guard storeMode != nil else { return await record(unit, summary: &summary) }
        guard !unit.messages.isEmpty else {
            // Nothing to store (the group would pass over it, and the cursors would no longer line up).
            parts[unit.tenant]?.ledger.accepted(unit.serial)
            return
        }
        batch.append(unit)
        if batch.count >= SendSession.storeBatchUnits { await recordBatch(&batch, summary: &summary) }
    }

    /// Records the window tenant by tenant, in the order the tenants first appear (``StoreWindow``). Returns
    /// early when the group stopped on a signal (the units left are in no cursor written: the re-run reads
    /// them again).
    private func recordBatch(_ batch: inout [Pending], summary: inout ReadSummary) async {
        guard let storeMode else {
            batch = []
            return
        }
        let units = batch
        batch = []
        let window = StoreWindow(units.map(\.windowUnit))
        let cursors = window.cursors(
            keepsCursor: storeMode.tracker != nil, inherited: storeMode.inherited, inputName: storeMode.inputName)
        for append in window.appends {
            let positions = Array(append)
            let recorded = await recordAppend(
                positions.map { units[window.order[$0]] }, cursors: positions.map { cursors[$0] },
                storeMode: storeMode, summary: &summary)
            guard recorded else { return }
        }
    }

    /// Records one tenant's units of a window in one call, each unit's cursor named first; a unit the group
    /// refuses is skipped and reported, as one at a time would be. False when the group stopped on a signal.
    private func recordAppend(
        _ units: [Pending], cursors: [InputCursor?], storeMode: StoreMode, summary: inout ReadSummary
    ) async -> Bool {
        guard let tenant = units.first?.tenant, let part = parts[tenant] else { return true }
        var rest = units[...]
        var restCursors = cursors[...]
        while !rest.isEmpty {
            storeMode.prepare(cursors: Array(restCursors))
            let before = await group.status(of: tenant)?.counters.accepted ?? 0
            do {
                try await group.record(contentsOf: rest.map(\.messages), tenant: tenant)
                for unit in rest { part.ledger.accepted(unit.serial) }
                rest = []
            } catch {
                // The units before the one that failed were accepted: as many messages as the counter moved.
                var accepted = (await group.status(of: tenant)?.counters.accepted ?? 0) - before
                while let unit = rest.first, unit.messages.count <= accepted {
                    accepted -= unit.messages.count
                    part.ledger.accepted(unit.serial)
                    rest.removeFirst()
                    restCursors.removeFirst()
                }
                if error.code == .shutDown, stopSignal.withLock({ $0 }) != nil { return false }
                if let unit = rest.first, !ReadSummary.isSkippable(error.deliveryError ?? error) {
                    // The store's failure, not the input's: reading stops, and the unit stays in the ledger.
                    summary.stopOnStoreFailure(
                        error, at: unit.location, keepsCursor: storeMode.tracker != nil, io: io)
                    return false
                }
                // The unit it refused (too large) is skipped and reported: done, as the later units' cursors
                // count it.
                if let unit = rest.popFirst() {
                    restCursors.removeFirst()
                    part.ledger.remove(unit.serial)
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

    /// Records one unit without a store.
    private func record(_ unit: Pending, summary: inout ReadSummary) async {
        guard let part = parts[unit.tenant] else { return }
        do {
            try await group.record(unit.messages, tenant: unit.tenant)
            part.ledger.accepted(unit.serial)
        } catch {
            if error.code == .shutDown, stopSignal.withLock({ $0 }) != nil { return }
            part.ledger.remove(unit.serial)
            summary.skipped += 1
            io.writeError("\(unit.location): skipped: \(error)\n")
        }
    }

    /// Writes what is left to each tenant's failed file, prints the summaries and returns the exit status.
    ///
    /// With a store, `held` is what it held for each tenant when the run started and `left` what it still
    /// holds (with why the cursor could not be cleared): what was read and not delivered stays there, not
    /// in the failed files.
    private func finish(
        _ summary: ReadSummary, held: [String: Int], left: (left: [String: Int], failure: String?)?
    ) async -> Int32 {
        let signal = stopSignal.withLock { $0 }
        var allDelivered = true
        var lost = false
        var totals = SegmentPipeline.Counters()
        // An in-place re-send of a tenant's failed file replaces it only when everything it held is known.
        let progress = InputProgress(
            isComplete: signal == nil && !summary.readFailed && !summary.lostUnreadable,
            bytesConsumed: summary.bytesConsumed)
        for tenant in options.tenants.names {
            guard let part = parts[tenant] else { continue }
            let taken = part.ledger.takeAll()
            let (units, notAccepted) = (taken.units, taken.notAccepted)
            part.undelivered.save(taken.forFailedFile(storeMode))
            let note = part.undelivered.finish(
                part.undelivered.isBroken ? InputProgress(isComplete: false, bytesConsumed: 0) : progress)
            guard let counters = await group.status(of: tenant)?.counters else { continue }
            totals.accepted += counters.accepted
            totals.delivered += counters.delivered
            totals.failed += counters.failed
            totals.retries += counters.retries
            var text = "refiner-segment: \(tenant): \(counters.accepted) messages"
            if let storeMode, let earlier = held[tenant], earlier > 0 {
                text += " (and \(earlier) held in \(storeMode.directory) from an earlier run)"
            }
            text +=
                ": \(counters.delivered) delivered, \(counters.failed) failed, \(counters.retries) retries"
            let notSent = units.reduce(0) { $0 + $1.count } - notAccepted
            if notSent > 0, storeMode == nil { text += ", \(notSent) not sent" }
            if notAccepted > 0 { text += ", \(notAccepted) read but not queued" }
            if let written = part.undelivered.summary { text += "; " + written }
            if let note { text += "; " + note }
            if let storeMode, let count = left?.left[tenant], count > 0 {
                text += "; " + storeMode.leftNote(count, inputComplete: signal == nil && !summary.readFailed)
                allDelivered = false
            }
            io.writeError(text + "\n")
            let (toFile, toOutput) = part.undelivered.counts
            // A store call that failed leaves messages in the store, as a single-workspace run counts it.
            if toFile + toOutput > 0 || counters.storeFailures > 0 { allDelivered = false }
            if part.undelivered.lost > 0 { lost = true }
        }
        var text =
            "refiner-segment: \(summary.lines - summary.skipped) of \(summary.lines) lines read, "
            + "\(totals.accepted) messages for \(options.tenants.names.count) tenants: \(totals.delivered) delivered, "
            + "\(totals.failed) failed, \(totals.retries) retries"
        if summary.covered > 0 { text += "; \(summary.covered) lines accepted by an earlier run were not sent again" }
        if let failure = left?.failure { text += "; " + failure }
        if summary.ignored > 0 { text += "; \(summary.ignored) webhooks of other events ignored" }
        if let signal {
            text +=
                "; stopped by \(SignalListener.name(of: signal)) after input line \(summary.lastLine): later lines "
                + "were not read"
        }
        io.writeError(text + "\n")
        if lost { return RefinerSegmentTool.abandoned }
        if let signal { return 128 + signal }
        return summary.skipped == 0 && !summary.readFailed && allDelivered
            ? RefinerSegmentTool.success : RefinerSegmentTool.failure
    }
}

extension RefinerSegmentTool {
    /// `send --tenants FILE [--tenant NAME] [FILE]`: see ``TenantSendSession``.
    func sendTenants(_ arguments: [String]) async throws -> Int32 {
        let options = try TenantSendSession.Settings(arguments, environment: io.environment) { path in
            Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let input = try io.openInput(options.inputPath)
        let session: TenantSendSession
        do {
            session = try TenantSendSession(io: io, options: options, transport: URLSessionTransport(), input: input)
        } catch let error as ToolError {
            io.writeError("refiner-segment: \(error)\n")
            return Self.failure
        }
        return await session.run(input)
    }
}
