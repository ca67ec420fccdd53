import Foundation
import RefinerSegment

/// The bytes of stored profiles: a compact little-endian form, written and read without Foundation's coders.
extension FileProfileStore {
    enum Format {
        static let userKind: UInt8 = 1
        static let accountKind: UInt8 = 2

        struct Writer {
            var bytes: [UInt8] = []

            mutating func u8(_ value: UInt8) { bytes.append(value) }

            mutating func u32(_ value: UInt32) {
                withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
            }

            mutating func u64(_ value: UInt64) {
                withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
            }

            mutating func string(_ value: String) {
                u32(UInt32(value.utf8.count))
                bytes.append(contentsOf: value.utf8)
            }

            mutating func time(_ time: AnswerTime) {
                u64(UInt64(bitPattern: time.microseconds))
                string(time.responseID)
            }

            mutating func value(_ value: AnswerValue) {
                switch value {
                case .string(let text):
                    u8(0)
                    string(text)
                case .integer(let number):
                    u8(1)
                    u64(UInt64(bitPattern: number))
                case .decimal(let number):
                    u8(2)
                    u64(number.bitPattern)
                case .boolean(let flag):
                    u8(3)
                    u8(flag ? 1 : 0)
                case .strings(let texts):
                    u8(4)
                    u32(UInt32(texts.count))
                    for text in texts { string(text) }
                case .date(let date):
                    u8(5)
                    u64(date.timeIntervalSinceReferenceDate.bitPattern)
                }
            }

            mutating func traits(_ traits: CollectedTraits) {
                u32(UInt32(traits.count))
                for entry in traits {
                    string(entry.key)
                    time(entry.answeredAt)
                    value(entry.value)
                }
            }
        }

        struct Reader {
            let bytes: [UInt8]
            var index: Int

            struct Malformed: Error {}

            init(_ bytes: [UInt8], from index: Int = 0) {
                self.bytes = bytes
                self.index = index
            }

            mutating func u8() throws(Malformed) -> UInt8 {
                guard index < bytes.count else { throw Malformed() }
                index += 1
                return bytes[index - 1]
            }

            mutating func u32() throws(Malformed) -> UInt32 {
                guard bytes.count - index >= 4 else { throw Malformed() }
                var value: UInt32 = 0
                for shift in 0..<4 { value |= UInt32(bytes[index + shift]) << (8 * shift) }
                index += 4
                return value
            }

            mutating func u64() throws(Malformed) -> UInt64 {
                guard bytes.count - index >= 8 else { throw Malformed() }
                var value: UInt64 = 0
                for shift in 0..<8 { value |= UInt64(bytes[index + shift]) << (8 * shift) }
                index += 8
                return value
            }

            mutating func string() throws(Malformed) -> String {
                let count = Int(try u32())
                guard bytes.count - index >= count else { throw Malformed() }
                defer { index += count }
                return String(decoding: bytes[index..<index + count], as: UTF8.self)
            }

            mutating func time() throws(Malformed) -> AnswerTime {
                let micros = Int64(bitPattern: try u64())
                return AnswerTime(microseconds: micros, responseID: try string())
            }

            mutating func value() throws(Malformed) -> AnswerValue {
                switch try u8() {
                case 0: return .string(try string())
                case 1: return .integer(Int64(bitPattern: try u64()))
                case 2: return .decimal(Double(bitPattern: try u64()))
                case 3: return .boolean(try u8() != 0)
                case 4:
                    let count = Int(try u32())
                    guard count <= bytes.count - index else { throw Malformed() }
                    var texts: [String] = []
                    texts.reserveCapacity(count)
                    for _ in 0..<count { texts.append(try string()) }
                    return .strings(texts)
                case 5: return .date(Date(timeIntervalSinceReferenceDate: Double(bitPattern: try u64())))
                default: throw Malformed()
                }
            }

            mutating func traits() throws(Malformed) -> CollectedTraits {
                let count = Int(try u32())
                guard count <= bytes.count - index else { throw Malformed() }
                var traits = CollectedTraits()
                traits.reserveCapacity(count)
                for _ in 0..<count {
                    let key = try string()
                    let time = try time()
                    traits.merge(key, value: try value(), answeredAt: time)
                }
                return traits
            }
        }

        static func encode(_ profile: UserProfile) -> [UInt8] {
            var writer = Writer()
            writer.u8(userKind)
            if let email = profile.email {
                writer.u8(1)
                writer.time(profile.emailAnsweredAt)
                writer.string(email)
            } else {
                writer.u8(0)
            }
            writer.traits(profile.traits)
            return writer.bytes
        }

        static func encode(_ profile: AccountProfile) -> [UInt8] {
            var writer = Writer()
            writer.u8(accountKind)
            writer.traits(profile.traits)
            return writer.bytes
        }

        static func decodeUser(_ bytes: [UInt8]) throws(Reader.Malformed) -> UserProfile {
            var reader = Reader(bytes)
            guard try reader.u8() == userKind else { throw Reader.Malformed() }
            var profile = UserProfile()
            if try reader.u8() == 1 {
                profile.emailAnsweredAt = try reader.time()
                profile.email = try reader.string()
            }
            profile.traits = try reader.traits()
            return profile
        }

        static func decodeAccount(_ bytes: [UInt8]) throws(Reader.Malformed) -> AccountProfile {
            var reader = Reader(bytes)
            guard try reader.u8() == accountKind else { throw Reader.Malformed() }
            return AccountProfile(traits: try reader.traits())
        }

        /// CRC-32 (IEEE 802.3, the zlib one) of a record's body: a torn or corrupt tail is found on open.
        static func checksum(_ bytes: [UInt8], from start: Int = 0) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for index in start..<bytes.count {
                crc = crcTable[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
            }
            return crc ^ 0xFFFF_FFFF
        }

        private static let crcTable: [UInt32] = (0..<256).map { (index: Int) -> UInt32 in
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
            return value
        }

        /// FNV-1a, 64 bits: a hash that is the same in every process (Swift's `Hasher` is seeded per process).
        static func hash(_ key: [UInt8]) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in key {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            return hash == 0 ? 1 : hash  // 0 marks an empty index slot
        }
    }
}
