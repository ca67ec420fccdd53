#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The body of a `POST /v1/batch` request: `{"batch":[...],"sentAt":"...","writeKey":"..."}`.
///
/// Segment accepts at most 500 KB per request, envelope included, and at most 2,500 messages (past that it
/// answers 200 and drops the rest), so batches are cut to both limits before they are encoded.
public enum SegmentBatch {
    /// The largest request body Segment accepts, in bytes: 500 KB.
    public static let maximumBytes = 500 * 1024
    /// The most messages Segment accepts in one batch.
    public static let maximumMessages = 2500

    /// The body's bytes around the messages: everything but the messages and the commas between them.
    ///
    /// A batch of messages `m` is `envelopeBytes(writeKey:) + Σ m.byteCount + (m.count - 1)` bytes long.
    public static func envelopeBytes(writeKey: WriteKey) -> Int {
        encode([], sentAt: Date(timeIntervalSince1970: 0), writeKey: writeKey).count
    }

    /// The exact size of the body that ``encode(_:sentAt:writeKey:)`` makes for these messages.
    public static func byteCount(of messages: some Collection<SegmentMessage>, writeKey: WriteKey) -> Int {
        envelopeBytes(writeKey: writeKey) + messages.reduce(0) { $0 + $1.byteCount } + max(messages.count - 1, 0)
    }

    /// Encodes a batch request body.
    ///
    /// - Parameters:
    ///   - messages: The messages, in sending order; an `identify` and its `group` belong in the same batch.
    ///   - sentAt: The time of this attempt. Set it afresh on every retry: Segment corrects event times with
    ///     `receivedAt - (sentAt - timestamp)`, so a stale `sentAt` shifts every event.
    ///   - writeKey: The source's write key, carried in the body as well as in the `Authorization` header.
    /// - Returns: The UTF-8 JSON body. The date must lie in the years 0000 to 9999 (the clock's now does).
    public static func encode(
        _ messages: some Collection<SegmentMessage>,
        sentAt: Date,
        writeKey: WriteKey
    ) -> [UInt8] {
        // The envelope's end, `"sentAt":"…","writeKey":"…"}`, from the writer (the date, the key's escaping):
        // the object it writes less its `{`.
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.rawKey("sentAt")
        writer.date(sentAt)
        writer.rawKey("writeKey")
        writer.string(writeKey.rawValue)
        writer.endObject()
        let tail = writer.bytes(from: 1)
        // The messages' bytes copied once, straight into the body, which is made at its exact size: a batch
        // of 500 KB is one allocation and one pass over its bytes.
        let head: StaticString = #"{"batch":["#
        let join: StaticString = "],"
        let count =
            head.utf8CodeUnitCount + messages.reduce(0) { $0 + $1.json.count } + max(messages.count - 1, 0)
            + join.utf8CodeUnitCount + tail.count
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var next = 0
            func copy(_ bytes: UnsafeRawBufferPointer) {
                guard let source = bytes.baseAddress, let base = buffer.baseAddress else { return }
                UnsafeMutableRawPointer(base + next).copyMemory(from: source, byteCount: bytes.count)
                next += bytes.count
            }
            copy(UnsafeRawBufferPointer(start: head.utf8Start, count: head.utf8CodeUnitCount))
            for (index, message) in messages.enumerated() {
                if index > 0 {
                    buffer[next] = UInt8(ascii: ",")
                    next += 1
                }
                message.json.withUnsafeBytes(copy)
            }
            copy(UnsafeRawBufferPointer(start: join.utf8Start, count: join.utf8CodeUnitCount))
            tail.withUnsafeBytes(copy)
            initialized = next
        }
    }
}
