#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One scratch buffer per thread for the builder's ``JSONWriter``: every response's messages are written in a
/// buffer of ``capacity`` bytes and copied out, so the buffer is taken from the thread that builds and given
/// back to it, instead of allocated and freed once per response.
///
/// The buffer is owned by one writer at a time: taking it empties the thread's slot, so a writer made while
/// another holds it (a split message) allocates its own. Only a buffer of exactly ``capacity`` bytes goes back
/// (one that grew is freed), and a thread's buffer is freed when the thread ends.
enum ScratchBuffer {
    /// The bytes of a scratch buffer.
    static let capacity = 1024

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { buffer in buffer?.deallocate() }
        precondition(status == 0, "no thread-specific key for the scratch buffer")
        return key
    }()

    /// The calling thread's buffer of ``capacity`` bytes, taken from it, or a new one.
    static func take() -> UnsafeMutablePointer<UInt8> {
        let key = Self.key
        guard let buffer = pthread_getspecific(key) else { return .allocate(capacity: capacity) }
        pthread_setspecific(key, nil)
        return buffer.assumingMemoryBound(to: UInt8.self)
    }

    /// Gives a buffer of ``capacity`` bytes back to the calling thread, or frees it if the thread holds one.
    static func give(_ buffer: UnsafeMutablePointer<UInt8>) {
        let key = Self.key
        if pthread_getspecific(key) == nil, pthread_setspecific(key, UnsafeMutableRawPointer(buffer)) == 0 { return }
        buffer.deallocate()
    }
}
