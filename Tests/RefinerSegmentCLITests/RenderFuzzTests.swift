import Foundation
import Testing

/// SplitMix64, seeded, so every fuzz run is reproducible. (A copy of the core tests' `SeededRandom`: the two
/// test targets share no code.)
private struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    /// The generator of case `index` of a run seeded with `seed`.
    init(seed: UInt64, case index: Int) {
        state = seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD6E8_FEB8_6659_FD93)
        state = next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        Int.random(in: 0..<denominator, using: &self) < numerator
    }

    mutating func pick<Element>(_ elements: [Element]) -> Element {
        elements[Int.random(in: 0..<elements.count, using: &self)]
    }
}

/// `REFINER_FUZZ_SEED` (decimal, or hex with `0x`) and `REFINER_FUZZ_ITERATIONS`, as in the core tests.
private enum RenderFuzzSettings {
    /// Hands the thread back once per case: the cooperative pool has one thread per core, and tests that
    /// wait on the network (timeouts, retries) run on it too.
    static func shareThePool() async {
        await Task.yield()
    }

    static let seed: UInt64 = {
        guard let text = ProcessInfo.processInfo.environment["REFINER_FUZZ_SEED"] else { return 0x5EED_2026_1125_0006 }
        return (text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)) ?? 0x5EED_2026_1125_0006
    }()

    static func iterations(_ defaultCount: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment["REFINER_FUZZ_ITERATIONS"], let count = Int(text),
            count > 0
        else { return defaultCount }
        return count
    }

    static func origin(_ index: Int) -> String { "REFINER_FUZZ_SEED=0x\(String(seed, radix: 16)), case \(index)" }
}

/// One input record of a fuzz run: a good one with the message ids it must print, or a bad one.
private enum FuzzRecord {
    case good(lines: [[UInt8]], messageIDs: [String])
    case bad(line: [UInt8], kind: String)
}

/// Builds good response lines and malformed lines.
private struct RecordFactory {
    var random: FuzzRandom
    let caseIndex: Int
    var serial = 0

    static let texts = [
        "What is your job role?", "How big is your team?", "Wie groß ist Ihr Team?", "Qu’est-ce que c’est ?",
        #"Quotes \" and \\ backslashes"#, #"Escapes \u00e9\n\t\u0000 and \ud83d\ude00"#, "日本語の質問", "😀",
        "Какая у вас должность?", "",
    ]

    static let values = [
        #""CEO""#, "10", "-3", "4.5", "true", "false", "null", #"["a", "b"]"#, "[]", #""\u0000\"\\""#,
        "123456789012345678901234567890", "1e308", "-0.0", "9223372036854775807", "-9223372036854775808",
        #""😀 \ud83d\ude00""#,
    ]

    /// A good response line: unique id, a few answers, an account half the time.
    mutating func goodLine() -> (line: String, messageIDs: [String]) {
        serial += 1
        let id = "r\(caseIndex)-\(serial)"
        let hasAccount = random.chance(1, in: 2)
        let answers = (0..<Int.random(in: 0...4, using: &random)).map { position in
            let text = random.pick(Self.texts)
            let property = random.chance(1, in: 5) ? #", "property": "custom_\#(position)""# : ""
            let attribution = random.chance(1, in: 3) ? #", "attribution": "account""# : ""
            let value = random.pick(Self.values)
            return
                #"{"question": {"id": "q\#(position)", "text": "\#(text)"\#(property)\#(attribution)}, "value": \#(value)}"#
        }
        let user =
            random.chance(1, in: 4)
            ? #""anonymousId": "anon-\#(Int.random(in: 0..<3, using: &random))""#
            : #""id": "u\#(Int.random(in: 0..<3, using: &random))", "email": "u@example.com""#
        let account = hasAccount ? #", "account": {"id": "acct-\#(Int.random(in: 0..<3, using: &random))"}"# : ""
        let line =
            #"{"id": "\#(id)", "completedAt": "2026-11-20T10:15:00.000Z", "survey": {"id": "s1", "name": "Onboarding"}, "#
            + #""user": {\#(user)}\#(account), "answers": [\#(answers.joined(separator: ", "))]}"#
        return (line, ["refiner-\(id)-identify"] + (hasAccount ? ["refiner-\(id)-group"] : []))
    }

    /// A malformed record and what kind of damage it has.
    mutating func badLine() -> (line: [UInt8], kind: String) {
        let good = Array(goodLine().line.utf8)
        switch Int.random(in: 0..<14, using: &random) {
        case 0, 1:
            // Truncated at some offset (never empty: an empty line is no record).
            let cut = Int.random(in: 1..<good.count, using: &random)
            return (Array(good[..<cut]), "truncated at \(cut)")
        case 2, 3:
            let (field, replacement) = random.pick([
                (#""id": "r"#, #""id": 42, "x": "r"#),
                (#""completedAt": "2026-11-20T10:15:00.000Z""#, #""completedAt": true"#),
                (#""completedAt": "2026-11-20T10:15:00.000Z""#, #""completedAt": "20.11.2026\nline 1: forged""#),
                (#""completedAt": "2026-11-20T10:15:00.000Z""#, #""completedAt": "2026-02-30T10:15:00Z""#),
                (#""survey": {"id": "s1", "name": "Onboarding"}"#, #""survey": "s1""#),
                (#""survey": {"id": "s1", "name": "Onboarding"}"#, #""survey": {"id": null}"#),
                (#""answers": ["#, #""answers": {"a": 1}, "x": ["#),
                (#""answers": ["#, #""answers": [{"question": {"id": "", "text": "Line\nbreak"}, "value": 1}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t", "attribution": "nobody"}}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": {"a": 1}}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": [1, 2]}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": 7}, "value": 1}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": 1e999}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": -1e999}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": 0x10}, "#),
                (#""answers": ["#, #""answers": [{"question": {"id": "qx", "text": "t"}, "value": NaN}, "#),
                (
                    #""answers": ["#,
                    #""answers": [{"question": {"id": "q0", "text": "a"}}, {"question": {"id": "q0", "text": "b"}}, "#
                ),
                (
                    #""answers": ["#,
                    #""answers": [{"question": {"id": "p1", "text": "a", "property": "Same"}}, {"question": {"id": "p2", "text": "b", "property": "same"}}, "#
                ),
                (#""user": {"#, #""user": {"id": "", "anonymousId": null, "x": 1, "y": {"#),
            ])
            var text = String(decoding: good, as: UTF8.self)
            if field == #""user": {"#, let start = text.range(of: field),
                let end = text[start.upperBound...].firstIndex(of: "}")
            {
                // A user with neither an id nor an anonymous id.
                text.replaceSubrange(
                    start.lowerBound...end, with: #""user": {"id": "", "anonymousId": "", "email": "e"}"#)
                return (Array(text.utf8), "user without identity")
            }
            guard let range = text.range(of: field) else { return (Array("{".utf8) + good, "doubled brace") }
            text.replaceSubrange(range, with: replacement)
            if text.hasSuffix(", ]}") { text = String(text.dropLast(4)) + "]}" }
            return (Array(text.utf8), "wrong type: \(replacement)")
        case 4:
            return (
                Array(
                    random.pick(["[]", "42", #""text""#, "null", "true", "]}", "{}", "{\"id\": \"r\"}", "\u{0}"]).utf8),
                "not a response"
            )
        case 5, 6:
            // Invalid UTF-8 inside a string.
            let invalid = random.pick(
                [
                    [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80],
                    [0xFE, 0xFE],
                ] as [[UInt8]])
            let quote = good.indices.filter { good[$0] == UInt8(ascii: "\"") }.dropFirst(3)
            let at = random.pick(Array(quote)) + 1
            return (Array(good[..<at]) + invalid + Array(good[at...]), "invalid UTF-8 \(invalid)")
        case 7:
            // A raw NUL or other control byte inside or outside a string.
            let at = Int.random(in: 1..<good.count, using: &random)
            return (
                Array(good[..<at]) + [random.pick([0x00, 0x01, 0x1F] as [UInt8])] + Array(good[at...]),
                "control byte at \(at)"
            )
        case 8:
            let depth = random.pick([600, 5_000, 100_000])
            let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            return (
                Array(
                    String(decoding: good, as: UTF8.self)
                        .replacingOccurrences(
                            of: #""answers": ["#,
                            with: #""answers": [{"question": {"id": "qx", "text": "t"}, "value": \#(nested)}, "#
                        ).utf8),
                "nested \(depth)"
            )
        case 9:
            let depth = random.pick([600, 100_000])
            return (
                Array((String(repeating: "[", count: depth) + String(repeating: "]", count: depth)).utf8),
                "bare nested \(depth)"
            )
        case 10:
            // A lone `{` that never closes: the start of a pretty-printed document that is not one.
            return (Array(random.pick(["{", " { ", "\t{"]).utf8), "lone brace")
        case 11:
            // A webhook payload with its parts missing or wrong.
            return (
                Array(
                    random.pick([
                        #"{"triggered_event": "Completed Survey"}"#,
                        #"{"triggered_event": "Completed Survey", "uuid": "c", "remote_id": null, "response": {"uuid": "x", "completed_at": "yesterday", "data": {}}, "form": {"uuid": "f", "name": "F"}}"#,
                        #"{"triggered_event": "Completed Survey", "uuid": "c", "remote_id": "u", "response": {"uuid": "x", "completed_at": "2022-10-18T05:05:45.000000Z", "data": "text"}, "form": {"uuid": "f", "name": "F"}}"#,
                    ]).utf8),
                "bad webhook"
            )
        default:
            // Leading garbage before a good line, or a good line followed by more JSON.
            return random.chance(1, in: 2)
                ? (Array("x".utf8) + good, "garbage before") : (good + Array(#" {"id": "more"}"#.utf8), "trailing JSON")
        }
    }
}

/// Fuzz tests of `render`: good response lines mixed with malformed ones (truncated JSON, wrong types, numbers
/// JSON cannot carry, invalid UTF-8, control bytes, deep nesting, lone braces, huge lines). Whatever the mix,
/// the tool must not trap, must report each bad record once with its line number, and must print exactly
/// what the good records alone print.
struct RenderFuzzTests {
    @Test
    func badLinesAreReportedOnceAndGoodLinesStillPrint() async throws {
        let iterations = RenderFuzzSettings.iterations(150)
        for index in 0..<iterations {
            await RenderFuzzSettings.shareThePool()
            var factory = RecordFactory(
                random: FuzzRandom(seed: RenderFuzzSettings.seed, case: index), caseIndex: index)
            var records: [FuzzRecord] = []
            for _ in 0..<Int.random(in: 1...16, using: &factory.random) {
                if factory.random.chance(1, in: 2) {
                    let (line, ids) = factory.goodLine()
                    records.append(.good(lines: [Array(line.utf8)], messageIDs: ids))
                } else {
                    let (line, kind) = factory.badLine()
                    records.append(.bad(line: line, kind: kind))
                }
            }
            // Tiny chunks split lines (and UTF-8 sequences) across reads; the test source copies its rest on
            // every read, so they are kept to small inputs.
            let chunkSize = factory.random.pick([1 << 16, 4096, 7, 1])
            let inputSize = records.reduce(0) { size, record in
                switch record {
                case .good(let lines, _): return size + lines.reduce(0) { $0 + $1.count + 1 }
                case .bad(let line, _): return size + line.count + 1
                }
            }
            try await check(
                records, chunkSize: inputSize > 20_000 ? max(chunkSize, 4096) : chunkSize,
                origin: RenderFuzzSettings.origin(index))
        }
    }

    @Test
    func prettyPrintedPayloadsStillRenderBesideBadLines() async throws {
        let pretty = try WebhookCLIFixtures.completedSurvey().split(
            separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false
        )
        .map { Array($0) }
        let fixtureID = "refiner-7c508c60-4ea2-11ed-9302-57708fe11d26-identify"
        let iterations = RenderFuzzSettings.iterations(40)
        for index in 0..<iterations {
            await RenderFuzzSettings.shareThePool()
            var factory = RecordFactory(
                random: FuzzRandom(seed: RenderFuzzSettings.seed, case: index), caseIndex: index)
            var records: [FuzzRecord] = []
            for _ in 0..<Int.random(in: 2...8, using: &factory.random) {
                switch Int.random(in: 0..<3, using: &factory.random) {
                case 0: records.append(.good(lines: pretty.filter { !$0.isEmpty }, messageIDs: [fixtureID]))
                case 1:
                    let (line, ids) = factory.goodLine()
                    records.append(.good(lines: [Array(line.utf8)], messageIDs: ids))
                default:
                    let (line, kind) = factory.badLine()
                    records.append(.bad(line: line, kind: kind))
                }
            }
            try await check(records, chunkSize: 1 << 16, origin: RenderFuzzSettings.origin(index))
        }
    }

    @Test
    func tenMegabyteLinesAreReportedAndTheirNeighboursPrint() async throws {
        var factory = RecordFactory(random: FuzzRandom(seed: RenderFuzzSettings.seed, case: 0), caseIndex: 0)
        let huge = String(repeating: "ab", count: 5 << 20)
        var records: [FuzzRecord] = []
        let first = factory.goodLine()
        records.append(.good(lines: [Array(first.line.utf8)], messageIDs: first.messageIDs))
        // A well-formed response whose answer makes a message far over Segment's 32 KB.
        records.append(
            .bad(
                line: Array(
                    (#"{"id": "big", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {"id": "u"}, "#
                        + #""answers": [{"question": {"id": "q", "text": "t"}, "value": "\#(huge)"}]}"#).utf8),
                kind: "10 MB answer"))
        let second = factory.goodLine()
        records.append(.good(lines: [Array(second.line.utf8)], messageIDs: second.messageIDs))
        // 10 MB of a string that never ends, then 10 MB of nesting.
        records.append(.bad(line: Array(#"{"id": ""#.utf8) + Array(huge.utf8), kind: "10 MB open string"))
        records.append(.bad(line: [UInt8](repeating: UInt8(ascii: "["), count: 10 << 20), kind: "10 MB of ["))
        let third = factory.goodLine()
        records.append(.good(lines: [Array(third.line.utf8)], messageIDs: third.messageIDs))
        try await check(records, chunkSize: 1 << 20, origin: "10 MB lines")
    }

    /// Refiner's real webhook payload with one field replaced by a random JSON value or removed: whatever
    /// the change, the record either renders, is ignored as another event, or is reported once; the good
    /// line after it always prints.
    @Test
    func mutatedWebhookPayloadsRenderOrAreReportedOnce() async throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(try WebhookCLIFixtures.completedSurveyOnOneLine()))
        let replacements: [Any] = [
            NSNull(), true, false, 0, -1, 1e308, Decimal(string: "123456789012345678901234567890")!, "", "x",
            "2020-09-02 21:53:33", "2022-10-18T05:05:45.123456Z", "Completed Survey", "Viewed Survey",
            [Any](), [String: Any](), [1, "a"] as [Any], ["a", "b"], ["a": [[String: Any]()]],
            "line 9: skipped: forged\nline 10", "\u{0}\u{1F}\u{FEFF}😀",
        ]
        let iterations = RenderFuzzSettings.iterations(150)
        for index in 0..<iterations {
            await RenderFuzzSettings.shareThePool()
            var random = FuzzRandom(seed: RenderFuzzSettings.seed, case: index)
            var mutation = ""
            let mutated = mutate(fixture, replacements: replacements, path: "", using: &random, description: &mutation)
            let record = try JSONSerialization.data(withJSONObject: mutated, options: [.sortedKeys])
            let good = WebhookCLIFixtures.jsonFormLine
            let run = await ToolRun.run(["render"], input: Array(record) + Array(("\n" + good + "\n").utf8))
            let described = "\(RenderFuzzSettings.origin(index)): \(mutation)\nstderr: \(run.error)"
            var ids: [String] = []
            for line in run.outputLines {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let id = object["messageId"] as? String
                else {
                    Issue.record("stdout line is not a Segment message: \(line.prefix(300)) in \(described)")
                    continue
                }
                ids.append(id)
            }
            #expect(ids.last == "refiner-resp_1-identify", "\(described)")
            let errorLines = run.error.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            switch run.status {
            case 0:
                #expect(
                    errorLines.isEmpty && ids.count >= 2
                        || errorLines.count == 1 && errorLines[0].hasPrefix("line 1: ignored: ") && ids.count == 1,
                    "\(described)")
            case 1:
                #expect(
                    errorLines.count == 2 && errorLines.first?.hasPrefix("line 1: skipped: ") == true, "\(described)")
                #expect(errorLines.last == "refiner-segment: 1 of 2 lines skipped", "\(described)")
                #expect(ids.count == 1, "\(described)")
            default:
                Issue.record("exit status \(run.status): \(described)")
            }
        }
    }

    /// `value` with one member or element, chosen at random at any depth, replaced or (in objects) removed.
    private func mutate(
        _ value: Any, replacements: [Any], path: String, using random: inout FuzzRandom, description: inout String
    ) -> Any {
        if var object = value as? [String: Any], !object.isEmpty, path.isEmpty || random.chance(4, in: 5) {
            let key = random.pick(object.keys.sorted())
            if random.chance(1, in: 3) || !(object[key] is [String: Any] || object[key] is [Any]) {
                if random.chance(1, in: 5) {
                    object[key] = nil
                    description = "removed \(path).\(key)"
                } else {
                    let replacement = random.pick(replacements)
                    object[key] = replacement
                    description = "\(path).\(key) = \(replacement)"
                }
            } else {
                object[key] = mutate(
                    object[key]!, replacements: replacements, path: path + "." + key, using: &random,
                    description: &description)
            }
            return object
        }
        if var array = value as? [Any], !array.isEmpty {
            let position = Int.random(in: 0..<array.count, using: &random)
            array[position] = mutate(
                array[position], replacements: replacements, path: path + "[\(position)]", using: &random,
                description: &description)
            return array
        }
        let replacement = random.pick(replacements)
        description = "\(path) = \(replacement)"
        return replacement
    }

    // The bugs this fuzzing found, pinned as plain cases.

    @Test(arguments: ["{", " { ", "\t{"])
    func loneBraceBeforeGoodLinesIsReportedAloneAndTheyPrint(brace: String) async throws {
        let input = [brace, WebhookCLIFixtures.jsonFormLine, brace, brace, WebhookCLIFixtures.jsonFormLine, "{"]
            .joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.outputLines.count == 2)
        #expect(
            run.error == """
                line 1: skipped: the JSON document that starts with a lone '{' is cut short by line 2, which starts a new record
                line 3: skipped: the JSON document that starts with a lone '{' is cut short by line 4, which starts a new record
                line 4: skipped: the JSON document that starts with a lone '{' is cut short by line 5, which starts a new record
                line 6: skipped: the JSON document that starts with a lone '{' ends before its braces balance
                refiner-segment: 4 of 6 lines skipped

                """
        )
        #expect(run.status == 1)
    }

    @Test
    func documentWithAValueOnTheLineAfterItsNameStillReads() async throws {
        let line = WebhookCLIFixtures.jsonFormLine
        let body = line.dropFirst().dropLast()
        let input = "{\n" + body.replacingOccurrences(of: #""user": {"#, with: "\"user\":\n {") + "\n}\n" + line
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.error == "")
        #expect(run.outputLines.count == 2)
    }

    @Test
    func reportsQuotingLineBreaksStayOnOneLine() async throws {
        let input = [
            #"{"id": "r1", "completedAt": "20.11.2026\nline 9: forged\u2028x", "survey": {"id": "s"}, "user": {"id": "u"}}"#,
            #"{"id": "r2", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {"id": "u"}, "#
                + #""answers": [{"question": {"id": "", "text": "Line\r\nbreak\u0000"}, "value": 1}]}"#,
        ].joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        let lines = run.error.split(separator: "\n")
        #expect(lines.count == 3, "\(run.error)")
        #expect(lines.first?.hasPrefix("line 1: skipped: ") == true)
        #expect(lines.first?.contains(#"20.11.2026\nline 9: forged\u{2028}x"#) == true, "\(run.error)")
        #expect(lines.dropFirst().first?.contains(#"Line\r\nbreak\u{0}"#) == true, "\(run.error)")
    }

    /// Runs `render` over the records and checks the exit status, stdout against the good records alone, and
    /// one report per bad record on stderr.
    private func check(_ records: [FuzzRecord], chunkSize: Int, origin: String) async throws {
        var input: [UInt8] = []
        var goodInput: [UInt8] = []
        var expectedIDs: [String] = []
        var badLineNumbers: [Int] = []
        var lineNumber = 0
        for record in records {
            switch record {
            case .good(let lines, let ids):
                for line in lines {
                    input += line + [UInt8(ascii: "\n")]
                    goodInput += line + [UInt8(ascii: "\n")]
                }
                lineNumber += lines.count
                expectedIDs += ids
            case .bad(let line, _):
                input += line + [UInt8(ascii: "\n")]
                lineNumber += 1
                badLineNumbers.append(lineNumber)
            }
        }
        let summary = records.map { record -> String in
            switch record {
            case .good(let lines, _): return lines.count == 1 ? "good" : "good (\(lines.count) lines)"
            case .bad(let line, let kind):
                return "bad \(kind): \(String(decoding: line.prefix(300), as: UTF8.self).debugDescription)"
            }
        }.enumerated().map { "  \($0.offset + 1). \($0.element)" }.joined(separator: "\n")
        let described = "\(origin), chunks of \(chunkSize):\n\(summary)"

        let run = await ToolRun.run(["render"], input: input, chunkSize: chunkSize)
        #expect(run.status == (badLineNumbers.isEmpty ? 0 : 1), "\(described)\nstderr: \(run.error.prefix(2000))")

        // Every good record's messages, in order, and nothing else.
        var printedIDs: [String] = []
        for line in run.outputLines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let id = object["messageId"] as? String
            else {
                Issue.record("stdout line is not a Segment message: \(line.prefix(300)) in \(described)")
                continue
            }
            printedIDs.append(id)
        }
        #expect(printedIDs == expectedIDs, "\(described)\nstderr: \(run.error.prefix(2000))")
        // Bad lines change nothing: the output is byte for byte what the good records alone give.
        let goodRun = await ToolRun.run(["render"], input: goodInput, chunkSize: 1 << 16)
        #expect(
            goodRun.status == 0 && goodRun.error.isEmpty, "the good records alone fail: \(goodRun.error.prefix(2000))")
        #expect(run.output == goodRun.output, "\(described)")

        // One report per bad record, naming its lines, each on a line of its own. Adjacent bad lines may make
        // one record (a lone `{` followed by a line that could continue it is reported as `lines N-M`), but no
        // report covers a good line, and every bad line is covered once.
        let errorLines = run.error.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        var covered: [Int] = []
        var reports = 0
        for line in errorLines {
            if line.hasPrefix("refiner-segment: ") { continue }
            guard let lines = reportedLines(line) else {
                Issue.record("stderr line is not a report: \(line.prefix(300).debugDescription) in \(described)")
                continue
            }
            covered += Array(lines)
            reports += 1
        }
        #expect(covered == badLineNumbers, "\(described)\nstderr: \(run.error.prefix(2000))")
        if !badLineNumbers.isEmpty {
            let goodRecords = records.count - badLineNumbers.count
            #expect(
                errorLines.last.map(String.init)
                    == "refiner-segment: \(reports) of \(reports + goodRecords) lines skipped",
                "\(described)\nstderr: \(run.error.prefix(2000))"
            )
        }
    }

    /// The lines of a report `line N: skipped: ...` or `lines N-M: skipped: ...`, or `nil`.
    private func reportedLines(_ line: Substring) -> ClosedRange<Int>? {
        guard let colon = line.firstIndex(of: ":"), line[colon...].hasPrefix(": skipped: ") else { return nil }
        let location = line[..<colon]
        if location.hasPrefix("line "), let number = Int(location.dropFirst(5)) { return number...number }
        guard location.hasPrefix("lines ") else { return nil }
        let bounds = location.dropFirst(6).split(separator: "-")
        guard bounds.count == 2, let first = Int(bounds[0]), let last = Int(bounds[1]), first < last else { return nil }
        return first...last
    }
}
