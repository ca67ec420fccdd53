import Foundation
import RefinerSegment

/// How `render` spreads its work: reading and decoding records (``RenderReading``) on one thread, building and
/// writing messages on the calling one, with a bounded hand-off of chunks of steps between them; or both on the
/// calling thread, one record after the other.
///
/// Decoding a record is pure and independent of the records around it, so the reading stage can run ahead while
/// the writing stage applies the responses to the profiles in input order: the output, the reports on standard
/// error, their order and the exit status are those of one thread. On one processor the two stages would only
/// take turns, so ``automatic`` then keeps to one thread.
struct RenderStages: Sendable {
    /// Whether reading runs on a thread of its own.
    var isPipelined: Bool
    /// Records per chunk handed from the reading stage to the writing stage.
    var chunkRecords = 256
    /// Input bytes per chunk at most: a chunk goes once its records hold this many (the record that passes the
    /// bound is its last), so that long records do not multiply what is held ahead.
    var chunkBytes = 1 << 20
    /// Chunks that wait at most: with ``chunkRecords`` and ``chunkBytes``, the bound of what is read ahead
    /// (about 1,000 lines, or about 4 MiB of input and the responses decoded from it).
    var chunksInFlight = 4

    /// Two stages when the process may run on more than one processor, else one.
    static var automatic: RenderStages {
        RenderStages(isPipelined: ProcessInfo.processInfo.activeProcessorCount > 1)
    }

    /// Everything on the calling thread.
    static let oneThread = RenderStages(isPipelined: false)

    /// Runs `reading` to its end and hands each step to `body`, in input order, on the calling thread. When
    /// `body` throws, reading stops (the reading thread is joined before this returns) and the error is thrown.
    func forEachStep(of reading: sending RenderReading, _ body: (consuming RenderStep) throws -> Void) rethrows {
        var pending: RenderReading? = reading
        if isPipelined {
            let handOff = StageHandOff<RenderStep>(capacity: chunksInFlight)
            let chunkRecords = max(1, chunkRecords)
            let chunkBytes = chunkBytes
            if let thread = JoinedThread.start(
                &pending,
                running: { reading in reading.run(into: handOff, chunkRecords: chunkRecords, chunkBytes: chunkBytes) }
            ) {
                defer {
                    handOff.close()
                    thread.join()
                }
                while var chunk = handOff.receive() {
                    // Taken out of the chunk, not copied: a copy would retain every string of the response, and
                    // freeing the chunk release them again.
                    chunk.reverse()
                    while let step = chunk.popLast() { try body(consume step) }
                }
                return
            }
        }
        // One thread (or none could be started): the same steps, one after the other.
        guard var reading = pending else { return }
        while let step = reading.next() { try body(consume step) }
    }
}

/// What `render`'s reading stage makes of one input record; the writing stage acts on the steps in input order.
enum RenderStep: Sendable {
    /// A record that cannot be read as JSON (too long, or a pretty-printed document that never ends): reported
    /// as skipped.
    case unreadable(location: String, reason: String)
    /// A record of nothing but spaces and tabs: nothing to do.
    case blank
    /// The response the record on `lines` holds.
    case response(lines: ClosedRange<Int>, SurveyResponse)
    /// The record on `lines` holds no response, for the reason `error` gives (`unhandledEvent` for a webhook
    /// of another event, which is ignored rather than skipped).
    case notResponse(lines: ClosedRange<Int>, RefinerSegmentError)
    /// The input could not be read further: `render` fails with `error` after the steps before it.
    case inputFailed(any Error)
}

/// `render`'s reading stage: records from the input, each decoded into a response or the reason it is none.
///
/// Pure but for the input it reads, and independent of the writing stage (the profiles, the output), so it can
/// run on a thread of its own (``RenderStages``).
struct RenderReading {
    private var reader: RecordReader
    /// The survey's and questions' strings of the last response, reused when the next one repeats them.
    private let repeated = RepeatedStrings()
    private var finished = false
    /// The size of the last record ``next()`` read (0 for one it skipped unread).
    private(set) var lastRecordByteCount = 0

    init(reader: RecordReader) {
        self.reader = reader
    }

    /// The next record's step, or `nil` at the end of the input (or after ``RenderStep/inputFailed(_:)``).
    mutating func next() -> RenderStep? {
        guard !finished else { return nil }
        let record: InputRecord
        do {
            guard let next = try reader.next() else {
                finished = true
                return nil
            }
            record = next
        } catch {
            finished = true
            return .inputFailed(error)
        }
        lastRecordByteCount = 0
        guard case .record(let lines, let bytes) = record else {
            // Every other kind of record has a problem to report.
            let problem = record.problem ?? (InputRecord.location(record.lines), "not a record")
            return .unreadable(location: problem.location, reason: problem.reason)
        }
        lastRecordByteCount = bytes.count
        if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return .blank }
        if let response = InputShape.onePassResponse(bytes, repeated: repeated) {
            return .response(lines: lines, response)
        }
        // Only now can the bytes be invalid UTF-8 (the reader checks every byte of a record it reads): the check
        // picks the words for that.
        guard UTF8Validation.isValid(bytes) else {
            return .notResponse(lines: lines, RefinerSegmentError(code: .invalidInput, detail: "not valid UTF-8"))
        }
        do {
            return .response(lines: lines, try InputShape(of: bytes).response(from: bytes))
        } catch {
            return .notResponse(lines: lines, error)
        }
    }

    /// Reads every record into `handOff` in chunks of `chunkRecords` steps (fewer when their records hold
    /// `chunkBytes` bytes), then finishes it. A chunk goes early when the next record would wait for input (a
    /// pipe that is quiet for now), so reports and output do not wait for records that have not come; reading
    /// stops when the consumer closes the hand-off.
    mutating func run(into handOff: StageHandOff<RenderStep>, chunkRecords: Int, chunkBytes: Int) {
        defer { handOff.finish() }
        var chunk: [RenderStep] = []
        chunk.reserveCapacity(chunkRecords)
        var bytes = 0
        while let step = next() {
            chunk.append(consume step)
            bytes += lastRecordByteCount
            if chunk.count >= chunkRecords || bytes >= chunkBytes || reader.mayWait() {
                guard handOff.send(chunk) else { return }
                chunk = []
                chunk.reserveCapacity(chunkRecords)
                bytes = 0
            }
        }
        if !chunk.isEmpty { _ = handOff.send(chunk) }
    }
}
