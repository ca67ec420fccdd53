extension RefinerWebhook {
    /// Any JSON value, as Refiner sends it in account attributes and response data.
    ///
    /// A closed set (JSON's own). ``answerValue`` turns a value into a trait value.
    public enum Value: Sendable, Hashable {
        /// `null`: no value, which produces no trait.
        case null
        /// `true` or `false`.
        case boolean(Bool)
        /// A number with an integral value that fits 64 bits.
        case integer(Int64)
        /// Any other number.
        case decimal(Double)
        /// A string.
        case string(String)
        /// An array.
        case array([Value])
        /// An object.
        case object([String: Value])

        /// The value as a trait value: `nil` for `null`; strings, numbers and booleans as they are; an array
        /// of strings as ``AnswerValue/strings(_:)``; anything else (an object, an array holding other
        /// values) as a string of its compact JSON with object keys sorted, so that nothing is lost and the
        /// same value always gives the same string.
        public var answerValue: AnswerValue? {
            switch self {
            case .null: return nil
            case .boolean(let value): return .boolean(value)
            case .integer(let value): return .integer(value)
            case .decimal(let value): return .decimal(value)
            case .string(let value): return .string(value)
            case .array(let elements):
                var strings: [String] = []
                strings.reserveCapacity(elements.count)
                for element in elements {
                    guard case .string(let string) = element else { return .string(compactJSON) }
                    strings.append(string)
                }
                return .strings(strings)
            case .object: return .string(compactJSON)
            }
        }

        /// The value as compact JSON, object keys sorted.
        var compactJSON: String {
            var writer = JSONWriter(capacity: 64)
            write(to: &writer)
            return String(decoding: writer.bytes, as: UTF8.self)
        }

        private func write(to writer: inout JSONWriter) {
            switch self {
            case .null: writer.null()
            case .boolean(let value): writer.boolean(value)
            case .integer(let value): writer.integer(value)
            case .decimal(let value): writer.decimal(value)
            case .string(let value): writer.string(value)
            case .array(let elements):
                writer.beginArray()
                for element in elements { element.write(to: &writer) }
                writer.endArray()
            case .object(let members):
                writer.beginObject()
                for key in members.keys.sorted() {
                    writer.key(key)
                    members[key]!.write(to: &writer)
                }
                writer.endObject()
            }
        }
    }
}

extension RefinerWebhook.Value: Codable {
    /// Decodes any JSON value. A number with an integral value that fits 64 bits becomes
    /// ``integer(_:)``, any other ``decimal(_:)``, as for ``AnswerValue``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .boolean(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .decimal(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([RefinerWebhook.Value].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: RefinerWebhook.Value].self))
        }
    }

    /// Encodes the value as the JSON it was read from.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .boolean(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .decimal(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
