/// The strings of the last response a reader decoded, by their place in it, so that the next response reuses
/// a `String` whose bytes are the same instead of making it again.
///
/// A backfill is thousands of responses to the same survey: the survey's id and name and each question's id,
/// text and property repeat line after line. Reused, such a string costs a comparison of its bytes and a
/// retain, where making it costs a UTF-8 check, often an allocation, and later its release; and the builder's
/// caches, which compare question texts, find the same storage and compare no bytes. Values, ids of responses
/// and users, emails: anything that differs from the last response is made as before, and replaces it.
///
/// For one reader at a time (the command-line tool's read loop): not `Sendable`. Holds at most
/// ``capacity`` strings.
package final class RepeatedStrings {
    /// The places kept: the survey's id and name, and three strings for each of the first 42 answers.
    package static let capacity = 128

    /// The strings by place, valid while this object is: readers hold the pointer, not the object, so that
    /// copying a reader retains nothing.
    let strings: UnsafeMutablePointer<String>

    /// No strings yet.
    package init() {
        strings = .allocate(capacity: Self.capacity)
        strings.initialize(repeating: "", count: Self.capacity)
    }

    deinit {
        strings.deinitialize(count: Self.capacity)
        strings.deallocate()
    }

    /// Places of the strings of a response.
    enum Place {
        static let surveyID = 0
        static let surveyName = 1
        /// A question's id, text and property are at `question(answer) + 0, 1, 2`.
        static func question(_ answer: Int) -> Int { 2 + 3 * answer }
    }

    /// The string of `bytes` (a string token without escapes): the one kept at `place` of `strings` when its
    /// bytes are the same, or made and kept there.
    @inline(__always)
    static func string(
        _ bytes: UnsafeBufferPointer<UInt8>, at place: Int, in strings: UnsafeMutablePointer<String>
    ) -> String {
        guard place < capacity else { return String(decoding: bytes, as: UTF8.self) }
        let slot = strings + place
        let isSame = slot.pointee.utf8.withContiguousStorageIfAvailable { kept in
            Self.equal(UnsafeRawBufferPointer(kept), UnsafeRawBufferPointer(bytes))
        }
        if isSame == true { return slot.pointee }
        let made = String(decoding: bytes, as: UTF8.self)
        slot.pointee = made
        return made
    }

    /// Whether two byte ranges are the same, eight bytes at a time.
    @inline(__always)
    private static func equal(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        let count = left.count
        guard count == right.count else { return false }
        var offset = 0
        while offset + 8 <= count {
            if left.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                != right.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            {
                return false
            }
            offset += 8
        }
        while offset < count {
            if left[offset] != right[offset] { return false }
            offset += 1
        }
        return true
    }
}
