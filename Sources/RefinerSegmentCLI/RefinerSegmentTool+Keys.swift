import RefinerSegment

extension RefinerSegmentTool {
    /// `keys`: question texts in, one trait key per line out, in order.
    ///
    /// The lines are one survey's questions, so texts that give the same key are told apart with `_2`,
    /// `_3`... as the builder does. A line that is not valid UTF-8 is reported and its invalid bytes
    /// replaced, so the output keeps one key per input line.
    func keys(_ arguments: [String]) throws -> Int32 {
        let options = try Options(arguments, valued: ["--prefix", "--max-length"])
        guard options.positional.isEmpty else { throw UsageError("keys reads stdin and takes no file") }
        let normalizer: TraitKeyNormalizer
        do {
            normalizer = try TraitKeyNormalizer(configuration: options.traitKeyConfiguration())
        } catch let error as RefinerSegmentError {
            throw UsageError(error.detail)
        }
        var reader = LineReader(source: try io.openInput(nil))
        var questions: [Question] = []
        var status = Self.success
        while let line = try reader.next() {
            switch line {
            case .tooLong(let number, let byteCount):
                io.writeError(
                    "line \(number): \(byteCount) bytes, longer than \(LineReader.maximumLineBytes); "
                        + "its key is made from an empty text\n")
                questions.append(Question(id: String(number), text: ""))
                status = Self.failure
            case .line(let number, let bytes):
                var text = String(decoding: bytes, as: UTF8.self)
                if !UTF8Validation.isValid(bytes) {
                    io.writeError("line \(number): not valid UTF-8; invalid bytes were replaced\n")
                    status = Self.failure
                }
                var id = String(number)
                if let tab = text.firstIndex(of: "\t") {
                    id = String(text[..<tab])
                    text = String(text[text.index(after: tab)...])
                }
                questions.append(Question(id: id, text: text))
            }
        }
        var output = OutputBuffer(write: io.writeOutput)
        for key in try normalizer.keys(for: questions) { output.appendLine(key.utf8) }
        output.flush()
        return status
    }
}
