/// Collects standard output and writes it in large pieces (256 KiB).
struct OutputBuffer {
    static let chunkBytes = 1 << 18
    private var bytes: [UInt8] = []
    private let write: @Sendable ([UInt8]) -> Void

    init(write: @escaping @Sendable ([UInt8]) -> Void) {
        self.write = write
        bytes.reserveCapacity(Self.chunkBytes + (1 << 12))
    }

    mutating func appendLine(_ line: [UInt8]) {
        bytes.append(contentsOf: line)
        bytes.append(UInt8(ascii: "\n"))
        if bytes.count >= Self.chunkBytes { flush() }
    }

    mutating func appendLine(_ line: some Sequence<UInt8>) {
        bytes.append(contentsOf: line)
        bytes.append(UInt8(ascii: "\n"))
        if bytes.count >= Self.chunkBytes { flush() }
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        write(bytes)
        bytes.removeAll(keepingCapacity: true)
    }
}

/// UTF-8 validation that also builds for macOS 13 (`String(validating:as:)` needs macOS 15).
enum UTF8Validation {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        // ASCII, the common case, eight bytes at a time; the scalar check from the first word that is not.
        let asciiPrefix = bytes.withUnsafeBytes { raw -> Int in
            var index = 0
            while index + 8 <= raw.count {
                if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
                index += 8
            }
            while index < raw.count, raw[index] < 0x80 { index += 1 }
            return index
        }
        if asciiPrefix == bytes.count { return true }
        var iterator = bytes[asciiPrefix...].makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}

/// An error the tool reports on standard error.
struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
