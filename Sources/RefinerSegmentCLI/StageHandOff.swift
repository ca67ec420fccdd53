import Foundation

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A bounded, ordered hand-off of chunks from one producing thread to one consuming thread: the link between
/// the two stages of `render` (``RenderStages``).
///
/// The producer blocks while ``capacity`` chunks wait, so memory stays bounded by what the consumer has not
/// taken yet; the consumer blocks while none waits. Either side may end: the producer with ``finish()`` (the
/// consumer then takes what is left and gets `nil`), the consumer with ``close()`` (the producer's next
/// ``send(_:)`` returns `false`, and it stops).
final class StageHandOff<Element: Sendable>: @unchecked Sendable {
    // @unchecked: `chunks`, `head`, `finished` and `closed` are read and written only with `condition` locked;
    // `capacity` is immutable.
    private let condition = NSCondition()
    private var chunks: [[Element]] = []
    /// The index in `chunks` of the oldest chunk not yet taken (taken ones are dropped in one go).
    private var head = 0
    private var finished = false
    private var closed = false
    /// The most chunks that wait at once.
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Hands `chunk` to the consumer, waiting while ``capacity`` chunks wait; `false` when the consumer has
    /// closed the hand-off (the chunk is dropped, and the producer should stop).
    func send(_ chunk: [Element]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !closed && chunks.count - head >= capacity { condition.wait() }
        guard !closed else { return false }
        chunks.append(chunk)
        condition.broadcast()
        return true
    }

    /// The producer is done: the consumer takes what waits, then gets `nil`.
    func finish() {
        condition.lock()
        defer { condition.unlock() }
        finished = true
        condition.broadcast()
    }

    /// The oldest chunk, waiting for one; `nil` once the producer has finished and every chunk was taken.
    func receive() -> [Element]? {
        condition.lock()
        defer { condition.unlock() }
        while head == chunks.count && !finished { condition.wait() }
        guard head < chunks.count else { return nil }
        let chunk = chunks[head]
        chunks[head] = []
        head += 1
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            head = 0
        }
        condition.broadcast()
        return chunk
    }

    /// The consumer is gone: chunks that wait are dropped and the producer's next ``send(_:)`` returns `false`.
    func close() {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        chunks.removeAll()
        head = 0
        condition.broadcast()
    }
}

/// A thread that runs one function over one value and is joined: ``join()`` returns once the function has.
///
/// A plain POSIX thread rather than a task: `render`'s reading stage blocks in `read(2)`, which must not hold
/// a thread of the concurrency runtime's pool, and valgrind (the benchmark's instruction counts) follows
/// POSIX threads but not that pool's workers.
struct JoinedThread {
    #if canImport(Darwin)
    private let handle: pthread_t?
    #else
    private let handle: pthread_t
    #endif

    /// What the thread runs (a box, whose address is the thread's argument).
    private final class Work {
        let run: () -> Void
        init(run: @escaping () -> Void) { self.run = run }
    }

    /// The value moved into the thread, in a box of its own so that it can be taken back when no thread starts.
    private final class Slot<State> {
        var value: State?
        init(_ value: State) { self.value = value }
    }

    /// Starts a thread that runs `body` on the value `state` holds, moving the value out of `state` (`nil`
    /// after the call). When no thread can be started, `state` keeps its value and the result is `nil`, so the
    /// caller can do the work itself.
    static func start<State>(
        _ state: inout sending State?,
        running body: @escaping @Sendable (inout State) -> Void
    ) -> JoinedThread? {
        guard let value = state.take() else { return nil }
        let slot = Slot(value)
        let work = Work {
            guard var value = slot.value.take() else { return }
            body(&value)
        }
        let argument = Unmanaged.passRetained(work).toOpaque()
        #if canImport(Darwin)
        var handle: pthread_t?
        #else
        var handle = pthread_t()
        #endif
        let status = pthread_create(&handle, nil, JoinedThread.entry, argument)
        guard status == 0 else {
            // Never started: take the value back out of the box.
            Unmanaged<Work>.fromOpaque(argument).release()
            state = slot.value.take()
            return nil
        }
        return JoinedThread(handle: handle)
    }

    /// Waits for the thread's function to return.
    func join() {
        #if canImport(Darwin)
        guard let handle else { return }
        #endif
        pthread_join(handle, nil)
    }

    #if canImport(Darwin)
    private static let entry: @convention(c) (UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? = { argument in
        Unmanaged<Work>.fromOpaque(argument).takeRetainedValue().run()
        return nil
    }
    #else
    private static let entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { argument in
        guard let argument else { return nil }
        Unmanaged<Work>.fromOpaque(argument).takeRetainedValue().run()
        return nil
    }
    #endif
}
