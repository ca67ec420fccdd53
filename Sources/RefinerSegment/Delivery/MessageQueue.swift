/// The pipeline's queue: units of messages (an `identify` and its `group`) in the order they were
/// accepted, cut into batches that never split a unit.
///
/// The storage of ``InMemoryMessageStore``: it appends units, cuts batches from the front and drains.
/// Storage is an array of units and a head index, so appending and cutting cost no per-message allocation.
struct MessageQueue {
    private var units: [[SegmentMessage]] = []
    /// Each unit's size in a batch body: its messages' JSON and the commas between them.
    private var unitBytes: [Int] = []
    private var head = 0
    /// Messages in the queue.
    private(set) var messageCount = 0
    /// Bytes of the queued units (``unitBytes``).
    private(set) var byteCount = 0
    /// Messages taken out of the queue so far: the sequence number of the message at its head.
    private(set) var removedCount = 0

    var isEmpty: Bool { head == units.count }

    /// The bytes a unit takes in a batch body.
    static func bytes(of unit: [SegmentMessage]) -> Int {
        var bytes = unit.count - 1
        for message in unit { bytes += message.json.count }
        return bytes
    }

    /// Whether a unit fits the bounds; an empty queue takes any unit, so the largest unit always gets in.
    func fits(count: Int, bytes: Int, maximumMessages: Int, maximumBytes: Int) -> Bool {
        isEmpty || (messageCount + count <= maximumMessages && byteCount + bytes <= maximumBytes)
    }

    mutating func append(_ unit: [SegmentMessage], bytes: Int) {
        units.append(unit)
        unitBytes.append(bytes)
        messageCount += unit.count
        byteCount += bytes
    }

    /// Takes the longest run of whole units from the front that fits the bounds, or `nil` when empty.
    ///
    /// - Parameter maximumBodyBytes: The bytes available to messages and their commas (the batch limit
    ///   less the envelope). A single unit always fits: the pipeline refuses larger ones at `record`.
    mutating func cutBatch(maximumMessages: Int, maximumBodyBytes: Int) -> [SegmentMessage]? {
        cutBatchWithUnits(maximumMessages: maximumMessages, maximumBodyBytes: maximumBodyBytes)?.messages
    }

    /// As ``cutBatch(maximumMessages:maximumBodyBytes:)``, with where each unit ends in the batch.
    mutating func cutBatchWithUnits(maximumMessages: Int, maximumBodyBytes: Int) -> (
        messages: [SegmentMessage], unitEnds: [Int]
    )? {
        guard !isEmpty else { return nil }
        var count = 0
        var bytes = 0
        var end = head
        while end < units.count {
            let added = unitBytes[end] + (count == 0 ? 0 : 1)
            if count > 0, count + units[end].count > maximumMessages || bytes + added > maximumBodyBytes { break }
            count += units[end].count
            bytes += added
            end += 1
        }
        var batch: [SegmentMessage] = []
        batch.reserveCapacity(count)
        var unitEnds: [Int] = []
        unitEnds.reserveCapacity(end - head)
        for index in head..<end {
            batch.append(contentsOf: units[index])
            unitEnds.append(batch.count)
            byteCount -= unitBytes[index]
            units[index] = []
        }
        head = end
        messageCount -= count
        removedCount += count
        compact()
        return (batch, unitEnds)
    }

    /// Empties the queue and returns its messages in order.
    mutating func removeAll() -> [SegmentMessage] {
        var messages: [SegmentMessage] = []
        messages.reserveCapacity(messageCount)
        for index in head..<units.count { messages.append(contentsOf: units[index]) }
        removedCount += messageCount
        units.removeAll()
        unitBytes.removeAll()
        head = 0
        messageCount = 0
        byteCount = 0
        return messages
    }

    /// Drops the consumed slots once they are the larger part of the storage (amortized O(1) per unit).
    private mutating func compact() {
        if head == units.count {
            units.removeAll(keepingCapacity: true)
            unitBytes.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= units.count {
            units.removeSubrange(0..<head)
            unitBytes.removeSubrange(0..<head)
            head = 0
        }
    }
}
