#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One scratch buffer per thread for the builder's ``JSONWriter``: every response's messages are written in a
/// buffer of ``capacity`` bytes and copied out, so the buffer is kept by the thread that builds and lent to
/// one writer at a time, instead of allocated and freed once per response.
///
/// The thread's slot holds the buffer from the first use to the thread's end (a thread-specific value whose
/// destructor frees it); a flag before the buffer says whether a writer holds it, so lending it and getting it
/// back are a load and two stores, not calls that change the slot. A writer made while another holds the
/// buffer (a split message) gets `nil` and allocates its own.
enum ScratchBuffer {
    /// The bytes of a scratch buffer.
    static let capacity = 1024
    /// The flag's room before the buffer (a whole alignment unit).
    private static let headerBytes = 16

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { block in block?.deallocate() }
        precondition(status == 0, "no thread-specific key for the scratch buffer")
        return key
    }()

    /// The calling thread's buffer of ``capacity`` bytes, now held by the caller until ``giveBack(_:)``; `nil`
    /// when a writer holds it already.
    static func take() -> UnsafeMutablePointer<UInt8>? {
        let key = Self.key
        let block: UnsafeMutableRawPointer
        if let existing = pthread_getspecific(key) {
            block = existing
            guard !block.load(as: Bool.self) else { return nil }
        } else {
            block = .allocate(byteCount: headerBytes + capacity, alignment: headerBytes)
            guard pthread_setspecific(key, block) == 0 else {
                block.deallocate()
                return nil
            }
        }
        block.storeBytes(of: true, as: Bool.self)
        return (block + headerBytes).bindMemory(to: UInt8.self, capacity: capacity)
    }

    /// Gives back a buffer ``take()`` lent: it stays the thread's, free for the next writer.
    static func giveBack(_ buffer: UnsafeMutablePointer<UInt8>) {
        (UnsafeMutableRawPointer(buffer) - headerBytes).storeBytes(of: false, as: Bool.self)
    }
}
