// Refiner webhooks read by the library's own JSON reader, with the results and errors of their `Codable`
// conformances (which stay, for hosts).

extension RefinerWebhook {
    /// Decodes the payload at `index`, as ``init(from:)`` does.
    init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        try reader.check(index, is: .object, expected: "an object")
        self.init(
            triggeredEvent: try reader.optionalString("triggered_event", of: index),
            uuid: try reader.optionalString("uuid", of: index),
            remoteID: try reader.optionalString("remote_id", of: index),
            email: try reader.optionalString("email", of: index))
        if let accountIndex = try reader.object("account", of: index, isOptional: true) {
            account = try decoding(.name("account")) { () throws(JSONDecodingError) in
                Account(
                    uuid: try reader.optionalString("uuid", of: accountIndex),
                    remoteID: try reader.optionalString("remote_id", of: accountIndex),
                    attributes: try reader.valuesIfPresent("attributes", of: accountIndex))
            }
        }
        if let formIndex = try reader.object("form", of: index, isOptional: true) {
            form = try decoding(.name("form")) { () throws(JSONDecodingError) in
                Form(
                    uuid: try reader.optionalString("uuid", of: formIndex),
                    name: try reader.optionalString("name", of: formIndex))
            }
        }
        if let responseIndex = try reader.object("response", of: index, isOptional: true) {
            response = try decoding(.name("response")) { () throws(JSONDecodingError) in
                Response(
                    uuid: try reader.optionalString("uuid", of: responseIndex),
                    completedAt: try reader.optionalString("completed_at", of: responseIndex),
                    data: try reader.valuesIfPresent("data", of: responseIndex))
            }
        }
    }
}

extension RefinerWebhook.Value {
    /// Decodes any JSON value, as ``init(from:)`` does; numbers exactly (see ``JSONReader/integer(_:)``).
    init(_ reader: JSONReader, _ index: Int) throws(JSONDecodingError) {
        switch reader.kind(index) {
        case .null: self = .null
        case .true: self = .boolean(true)
        case .false: self = .boolean(false)
        case .string: self = .string(reader.string(index))
        case .number:
            if let integer = reader.integer(index) {
                self = .integer(integer)
            } else if let decimal = reader.decimal(index) {
                self = .decimal(decimal)
            } else {
                // JSONDecoder tries every type in turn and reports the last, an object.
                throw JSONDecodingError(.wrongType(expected: "an object"))
            }
        case .array:
            var elements: [RefinerWebhook.Value] = []
            elements.reserveCapacity(reader.elementCount(of: index))
            try reader.forEachElement(of: index) { offset, element throws(JSONDecodingError) in
                elements.append(
                    try decoding(.index(offset)) { () throws(JSONDecodingError) in
                        try RefinerWebhook.Value(reader, element)
                    })
            }
            self = .array(elements)
        case .object:
            self = .object(try reader.values(index))
        }
    }
}

extension JSONReader {
    /// An object of values that may be absent or `null` (no entries), or `[]`: Refiner is written in PHP,
    /// whose JSON encoder writes an empty map as an empty array.
    fileprivate func valuesIfPresent(
        _ name: StaticString, of object: Int
    ) throws(JSONDecodingError) -> [String: RefinerWebhook.Value] {
        guard let index = member(name, of: object), kind(index) != .null else { return [:] }
        if kind(index) == .array, elementCount(of: index) == 0 { return [:] }
        return try decoding(.name(name.withUTF8Buffer { String(decoding: $0, as: UTF8.self) })) {
            () throws(JSONDecodingError) in
            guard kind(index) == .object else { throw JSONDecodingError(.wrongType(expected: "an object")) }
            return try values(index)
        }
    }

    /// The members of the object at `index` as values; a repeated name keeps its first value.
    fileprivate func values(_ index: Int) throws(JSONDecodingError) -> [String: RefinerWebhook.Value] {
        var values: [String: RefinerWebhook.Value] = [:]
        try forEachMember(of: index) { name, value throws(JSONDecodingError) in
            let key = string(name)
            guard values[key] == nil else { return }
            values[key] = try decoding(.name(key)) { () throws(JSONDecodingError) in
                try RefinerWebhook.Value(self, value)
            }
        }
        return values
    }
}
