extension SegmentCallBuilder {
    /// An `identify` or `group` whose collected traits pass the message limit, as several calls of the same
    /// type, each within the limit: the first carries the traits this response set (so what changed goes
    /// first), the others the rest in key order, packed greedily. Deterministic: the same profile always
    /// splits the same way, with the `messageId`s `refiner-<id>-<type>`, `refiner-<id>-<type>-2`, ...
    ///
    /// - Throws: ``RefinerSegmentError`` with code ``RefinerSegmentError/Code/messageTooLarge`` only when a
    ///   single trait cannot fit in a message of its own (and the response's own answers were checked by
    ///   ``changes(for:)`` already).
    func split(
        _ kind: SegmentMessage.Kind,
        response: SurveyResponse,
        parts: SharedParts,
        groupID: String? = nil,
        traits: [(key: String, value: AnswerValue, answeredAt: AnswerTime)]
    ) throws(RefinerSegmentError) -> [SegmentMessage] {
        let limit = configuration.maximumMessageBytes
        let time = AnswerTime(completedAt: response.completedAt, responseID: response.id)
        // The bytes of `"key":value` for every trait, and of the message around them (the largest part
        // number's id at most as long as this one's, so sizes are exact or over, never under).
        var sizes: [Int] = []
        sizes.reserveCapacity(traits.count)
        var measure = JSONWriter(capacity: 64 * traits.count)
        for trait in traits {
            // Every member after the first is written with its comma, which the packing counts apart.
            let before = measure.byteCount + (sizes.isEmpty ? 0 : 1)
            measure.key(trait.key)
            measure.value(trait.value)
            sizes.append(measure.byteCount - before)
        }
        let envelope =
            encode(kind, part: traits.count + 1, response: response, parts: parts, groupID: groupID) { _ in }
            .json.count
        var chunks: [[Int]] = [[]]
        var chunkBytes = envelope
        // This response's traits first, in one message (they fit: checked before the profile was touched).
        for index in traits.indices where traits[index].answeredAt == time {
            chunks[0].append(index)
            chunkBytes += sizes[index] + (chunks[0].count > 1 ? 1 : 0)
        }
        for index in traits.indices where traits[index].answeredAt != time {
            guard envelope + sizes[index] <= limit else {
                var single = Traits()
                single[traits[index].key] = traits[index].value
                throw tooLarge(kind, response: response, size: envelope + sizes[index], traits: single)
            }
            let comma = chunks[chunks.count - 1].isEmpty ? 0 : 1
            if chunkBytes + comma + sizes[index] > limit {
                chunks.append([index])
                chunkBytes = envelope + sizes[index]
            } else {
                chunks[chunks.count - 1].append(index)
                chunkBytes += comma + sizes[index]
            }
        }
        var messages: [SegmentMessage] = []
        for (number, chunk) in chunks.enumerated() where !chunk.isEmpty || number == 0 {
            // Keys in order within each message.
            let ordered = chunk.sorted()
            let message = encode(kind, part: messages.count + 1, response: response, parts: parts, groupID: groupID) {
                writer in
                for index in ordered {
                    writer.key(traits[index].key)
                    writer.value(traits[index].value)
                }
            }
            guard message.json.count <= limit else {
                var all = Traits()
                for index in ordered { all[traits[index].key] = traits[index].value }
                throw tooLarge(kind, response: response, size: message.json.count, traits: all)
            }
            messages.append(message)
        }
        return messages
    }
}
