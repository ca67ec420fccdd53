import Foundation
import RefinerSegment
import RefinerSegmentFileStore
import RefinerSegmentTesting
import RefinerSegmentURLSession

// refiner-segment-bench: the speed targets of DESIGN.md, each beside the baseline measured in the same run.
// Run it as `swift run -c release refiner-segment-bench [--json] [--quick] [--instructions]`.
//
// Each group below measures the baseline, then the library's hot path. A hot path defined as a
// `CountedWorkload` is also counted in instructions per operation by `--instructions` (see Instructions.swift);
// to add a figure, add a group in the same shape.

let arguments = Set(CommandLine.arguments.dropFirst())
let asJSON = arguments.contains("--json")
let rounds = arguments.contains("--quick") ? 3 : 5
/// `--only=NAME` runs one group (`keys`, `pairs`...), for profiling.
let only = CommandLine.arguments.first { $0.hasPrefix("--only=") }.map { String($0.dropFirst("--only=".count)) }
func runs(_ group: String) -> Bool {
    // The instruction mode counts the groups that define workloads, and nothing else.
    if let child = countedChild { return countedGroups[group] == child.name }
    if countsInstructions { return countedGroups[group] != nil && (only == nil || only == group) }
    return only == nil || only == group
}
/// The groups whose hot paths the instruction mode counts, and each one's workload: a child of the
/// instruction mode prepares only its own group.
let countedGroups = [
    "keys": "trait_keys", "pairs": "build_encode_pairs", "decode": "decode_responses", "render": "render_end_to_end",
]
/// `--no-baseline` skips the baseline figures, for profiling the library alone.
let measuresBaseline = !arguments.contains("--no-baseline") && !countsInstructions && countedChild == nil

func loadCorpus() -> [String] {
    guard let url = Bundle.module.url(forResource: "questions", withExtension: "txt"),
        let text = try? String(contentsOf: url, encoding: .utf8)
    else {
        FileHandle.standardError.write(Data("refiner-segment-bench: the question corpus is missing\n".utf8))
        exit(1)
    }
    return text.split(separator: "\n").map(String.init)
}

func progress(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

var figures: [Figure] = []

// 1. Trait-key normalization over the corpus.
let corpus = loadCorpus()
let normalizer = try TraitKeyNormalizer()
if runs("keys") {
    progress("normalizing \(corpus.count) question texts...")
    let baselineKeys = measure(rounds: rounds, operations: corpus.count * 20) {
        for _ in 0..<(measuresBaseline ? 20 : 0) { for text in corpus { blackhole &+= Baseline.key(text).utf8.count } }
    }
    let workload = CountedWorkload(
        name: "trait_keys", operation: "key", operationsPerRepeat: corpus.count, repeats: 2_000
    ) { repeats in
        for _ in 0..<repeats { for text in corpus { blackhole &+= normalizer.key(for: text).utf8.count } }
    }
    if measuresBaseline { figures.append(Figure(name: "baseline_keys", value: baselineKeys, unit: "keys/s")) }
    if !countInstructions(workload) {
        let keys = measure(rounds: rounds, operations: corpus.count * 20_000) { workload.run(20_000) }
        figures.append(
            Figure(name: "trait_keys", value: keys, unit: "keys/s", baseline: measuresBaseline ? baselineKeys : nil))
    }
}

// 2. Build + encode an identify+group pair with 7 traits (5 user, 2 account).
let completedAt = Date(timeIntervalSince1970: 1_795_169_700)
let answerTexts: [(String, Attribution, String)] = [
    ("What is your job role?", .user, "CEO"), ("How big is your team?", .user, "10+"),
    ("How did you hear about us?", .user, "A friend"), ("Which plan are you currently on?", .user, "Pro"),
    ("What's the main reason for your score?", .user, "Speed"),
    ("How many employees work at your company?", .account, "1000+"), ("Which industry are you in?", .account, "Retail"),
]
let response = SurveyResponse(
    id: "resp_123", completedAt: completedAt, survey: Survey(id: "onboarding", name: "Onboarding"),
    user: User(id: "your-user-id"), account: Account(id: "your-account-id"),
    answers: answerTexts.enumerated().map { index, answer in
        Answer(question: Question(id: "q\(index)", text: answer.0, attribution: answer.1), value: .string(answer.2))
    })
let baselineAnswers = answerTexts.map { Baseline.Answer(question: $0.0, isAccount: $0.1 == .account, value: $0.2) }
let builder = try SegmentCallBuilder()
if runs("pairs") {
    progress("building identify+group pairs...")
    let baselinePairs = measure(rounds: rounds, operations: 2_000) {
        for _ in 0..<(measuresBaseline ? 2_000 : 0) {
            blackhole &+= Baseline.pair(
                responseID: "resp_123", userID: "your-user-id", accountID: "your-account-id", completedAt: completedAt,
                answers: baselineAnswers)
        }
    }
    let workload = CountedWorkload(
        name: "build_encode_pairs", operation: "pair", operationsPerRepeat: 1, repeats: 20_000
    ) { repeats in
        for _ in 0..<repeats {
            do {
                // Not `if let built = try? ...`: that copied the pair and the profile out of the optional.
                let (messages, _) = try builder.process(response, profile: CollectedProfile())
                blackhole &+= messages.count
            } catch {}
        }
    }
    if measuresBaseline { figures.append(Figure(name: "baseline_pairs", value: baselinePairs, unit: "pairs/s")) }
    if !countInstructions(workload) {
        let pairs = measure(rounds: rounds, operations: 200_000) { workload.run(200_000) }
        figures.append(
            Figure(
                name: "build_encode_pairs", value: pairs, unit: "pairs/s",
                baseline: measuresBaseline ? baselinePairs : nil))
    }
}

// 3. The input path: decoding responses from their JSON form, and `render` of a file end to end.
let responseLines =
    runs("decode") || runs("render") ? makeResponseLines(countedChild == nil ? 20_000 : 2_000, from: response) : []
// `--write-render-corpus=PATH --lines=N`: writes the input path's corpus as a JSON Lines file and exits, for
// counting the tool itself under callgrind (`valgrind --tool=callgrind refiner-segment render PATH`).
if let path = CommandLine.arguments.first(where: { $0.hasPrefix("--write-render-corpus=") })?.dropFirst(22) {
    let count = CommandLine.arguments.first { $0.hasPrefix("--lines=") }.flatMap { Int($0.dropFirst(8)) } ?? 20_000
    let lines = makeResponseLines(count, from: response)
    try Data(lines.flatMap { $0 + [UInt8(ascii: "\n")] }).write(to: URL(fileURLWithPath: String(path)))
    exit(0)
}
let corpusMegabytes = Double(responseLines.reduce(0) { $0 + $1.count + 1 }) / 1_000_000
if runs("decode") {
    progress("decoding \(responseLines.count) responses (\(String(format: "%.1f", corpusMegabytes)) MB)...")
    let decoder = JSONDecoder()
    let baselineDecode = measure(rounds: rounds, operations: responseLines.count) {
        guard measuresBaseline else { return }
        for line in responseLines {
            blackhole &+= (try? decoder.decode(SurveyResponse.self, from: Data(line)))?.answers.count ?? 0
        }
    }
    let workload = CountedWorkload(
        name: "decode_responses", operation: "response", operationsPerRepeat: 2_000, repeats: 2
    ) { repeats in
        for _ in 0..<repeats {
            for line in responseLines.prefix(2_000) {
                blackhole &+= (try? SurveyResponse(json: line))?.answers.count ?? 0
            }
        }
    }
    if measuresBaseline {
        figures.append(Figure(name: "baseline_decode_responses", value: baselineDecode, unit: "responses/s"))
    }
    if !countInstructions(workload) {
        let decoded = measure(rounds: rounds, operations: responseLines.count) {
            for line in responseLines { blackhole &+= (try? SurveyResponse(json: line))?.answers.count ?? 0 }
        }
        figures.append(
            Figure(
                name: "decode_responses", value: decoded, unit: "responses/s",
                baseline: measuresBaseline ? baselineDecode : nil))
        figures.append(
            Figure(
                name: "decode_responses_bytes", value: decoded * corpusMegabytes / Double(responseLines.count),
                unit: "MB/s",
                baseline: measuresBaseline ? baselineDecode * corpusMegabytes / Double(responseLines.count) : nil))
    }
}
if runs("render") {
    progress("rendering a file of \(responseLines.count) responses through the tool's own path...")
    let path = try writeJSONLines(responseLines, name: "refiner-segment-bench-\(getpid()).jsonl")
    defer { try? FileManager.default.removeItem(atPath: path) }
    // Counted on the first 2,000 lines through the same command, run synchronously (see renderFileSynchronously).
    let countedPath = try writeJSONLines(
        Array(responseLines.prefix(2_000)), name: "refiner-segment-bench-\(getpid())-2000.jsonl")
    defer { try? FileManager.default.removeItem(atPath: countedPath) }
    let workload = CountedWorkload(
        name: "render_end_to_end", operation: "response", operationsPerRepeat: 2_000, repeats: 1
    ) { repeats in
        for _ in 0..<repeats { blackhole &+= renderFileSynchronously(countedPath) }
        // A counted child exits without running the defers above.
        try? FileManager.default.removeItem(atPath: countedPath)
        try? FileManager.default.removeItem(atPath: path)
    }
    if !countInstructions(workload) {
        let rendered = await measure(rounds: rounds, operations: responseLines.count) {
            blackhole &+= await renderFile(path)
        }
        if await renderFile(path) != 0 { progress("  render skipped lines of the corpus: the figure is wrong") }
        // The ratio is to the JSONDecoder baseline of decoding alone, which render also did before.
        figures.append(
            Figure(
                name: "render_end_to_end", value: rendered, unit: "responses/s",
                baseline: figures.first { $0.name == "baseline_decode_responses" }?.value))
        if renderFileSynchronously(path) != 0 { progress("  render skipped lines of the corpus: the figure is wrong") }
    }
}

// 4. The delivery pipeline into a transport that answers 200 at once: record -> batch -> send.
func makePairs(_ count: Int, prefix: String) -> [[SegmentMessage]] {
    var pairs: [[SegmentMessage]] = []
    pairs.reserveCapacity(count)
    var variant = response
    for index in 0..<count {
        variant.id = "\(prefix)\(index)"
        if let messages = try? builder.process(variant, profile: CollectedProfile()).messages { pairs.append(messages) }
    }
    return pairs
}

if runs("pipeline") {
    progress("recording pairs through the pipeline into a transport that answers 200...")
    let pairCount = 200_000
    let pairs = makePairs(pairCount, prefix: "pipe_")
    // BENCH_DURABLE_ONLY=1: the durable shapes alone (for a profile of them), their ratios then unset.
    let durableOnly = ProcessInfo.processInfo.environment["BENCH_DURABLE_ONLY"] == "1"
    let pipelinePairs =
        durableOnly
        ? nil
        : await measure(rounds: rounds, operations: pairCount) {
            let transport = InstantTransport()
            try? await SegmentPipeline.withPipeline(writeKey: WriteKey("bench"), transport: transport) { pipeline in
                await recordAll(pairs, into: pipeline)
            }
            blackhole &+= transport.bytes.value
        }
    if let pipelinePairs {
        figures.append(
            Figure(name: "pipeline_pairs", value: pipelinePairs, unit: "pairs/s", baseline: figures.baselinePairs))
    }
    // The same pairs recorded 1,000 at a time with `record(contentsOf:)`, the default linger.
    if !durableOnly {
        let batchedPairs = await measure(rounds: rounds, operations: pairCount) {
            let transport = InstantTransport()
            try? await SegmentPipeline.withPipeline(writeKey: WriteKey("bench"), transport: transport) { pipeline in
                await recordAll(pairs, perCall: 1_000, into: pipeline)
            }
            blackhole &+= transport.bytes.value
        }
        figures.append(
            Figure(
                name: "pipeline_pairs_contents_of", value: batchedPairs, unit: "pairs/s",
                baseline: figures.baselinePairs))
    }

    // The same pairs from 256 callers at once, one pair a call, in memory: the shape of
    // durable_pipeline_pairs below without the disk (its ratio stays to pipeline_pairs).
    let callers = Int(ProcessInfo.processInfo.environment["BENCH_DURABLE_CALLERS"] ?? "") ?? 256
    if !durableOnly {
        let concurrentPairs = await measure(rounds: rounds, operations: pairCount) {
            let transport = InstantTransport()
            try? await SegmentPipeline.withPipeline(writeKey: WriteKey("bench"), transport: transport) { pipeline in
                await recordConcurrently(pairs, callers: callers, into: pipeline)
            }
            blackhole &+= transport.bytes.value
        }
        figures.append(
            Figure(
                name: "pipeline_pairs_concurrent", value: concurrentPairs, unit: "pairs/s",
                baseline: figures.baselinePairs))
    }

    // The same pairs into a file store that fsyncs before `record` returns. First from 256 callers at once,
    // one pair a call (a server's request handlers): they share fsyncs (group commit). Then from 16 callers,
    // 100 pairs a call (a bridge or `send` passing on what it read). The ratios are to pipeline_pairs.
    for (name, callers, perCall) in [
        ("durable_pipeline_pairs", callers, 1), ("durable_pipeline_pairs_batched", 16, 100),
    ] {
        progress("recording pairs through the pipeline on a file store (fsync before ack), \(callers) callers...")
        let durablePairs = await measure(rounds: rounds, operations: pairCount) {
            let delivered = await recordDurably(
                pairs, callers: callers, perCall: perCall, into: scratchDirectory("durable"))
            if delivered != pairCount * 2 {
                progress("  delivered \(delivered) of \(pairCount * 2): the figure is wrong")
            }
        }
        figures.append(Figure(name: name, value: durablePairs, unit: "pairs/s", baseline: pipelinePairs))
    }
    // The floor of the 256-caller shape: each caller suspended once a pair until a write and an fsync of
    // its group's bytes, nothing else (no pipeline, no store). Its ratio is to pipeline_pairs too.
    progress("the floor of that shape: \(callers) callers, a write and an fsync per group, nothing else...")
    let floor = await measure(rounds: rounds, operations: pairCount) {
        blackhole &+= await groupCommitFloor(pairs: pairCount, callers: callers, into: scratchDirectory("floor"))
    }
    figures.append(Figure(name: "group_commit_floor", value: floor, unit: "pairs/s", baseline: pipelinePairs))
}

// 4c. Reopening a file store that holds a backlog of 1 GiB (`--quick`: 256 MiB): seconds and memory
// growth, in a fresh process (resident memory says nothing in one that built the backlog).
if runs("reopen") && only != "reopen-child" {
    let backlogBytes = arguments.contains("--quick") ? 256 << 20 : 1 << 30
    let directory = scratchDirectory("reopen")
    defer { try? FileManager.default.removeItem(at: directory) }
    progress("writing a backlog of \(backlogBytes >> 20) MiB into a file store...")
    let held = try await buildBacklog(bytes: backlogBytes, in: directory, from: makePairs(1_000, prefix: "reopen_"))
    progress("  \(held) messages; reopening it in a fresh process...")
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--only=reopen-child", "--no-baseline", directory.path]
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    for line in output.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 2, let value = Double(fields[1]) else { continue }
        if fields[0] == "file_store_reopen" {
            figures.append(Figure(name: "file_store_reopen_seconds", value: value, unit: "s", baseline: 2))
        } else if fields[0] == "file_store_reopen_cpu" {
            figures.append(Figure(name: "file_store_reopen_cpu_seconds", value: value, unit: "s", baseline: 2))
        } else if fields[0] == "file_store_reopen_memory" {
            figures.append(Figure(name: "file_store_reopen_memory", value: value, unit: "MiB", baseline: 64))
        } else if fields[0] == "file_store_reopen_messages" && Int(value) != held {
            progress("  the reopened store holds \(Int(value)) messages, not \(held): the figure is wrong")
        }
    }
}
if only == "reopen-child", let path = CommandLine.arguments.last {
    let before = procStatus("VmRSS")
    let clock = ContinuousClock()
    let cpuBefore = cpuSeconds()
    let start = clock.now
    let store = try FileMessageStore(directory: URL(fileURLWithPath: path))
    let elapsed = clock.now - start
    let cpu = cpuSeconds() - cpuBefore
    let held = try await store.recover(tenant: "default").messages
    let peak = procStatus("VmHWM")
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    progress(
        "  reopened \(held) messages in \(String(format: "%.2f", seconds)) s (\(String(format: "%.2f", cpu)) s of CPU); VmRSS before \(before >> 20) MiB, "
            + "now \(procStatus("VmRSS") >> 20) MiB, peak \(peak >> 20) MiB")
    print("file_store_reopen \(seconds)")
    print("file_store_reopen_cpu \(cpu)")
    print("file_store_reopen_memory \(Double(max(peak - before, 0)) / 1_048_576)")
    print("file_store_reopen_messages \(held)")
}

// 4b. The pipeline group: 100 tenants sharing one transport (TenantsBench.swift).
if runs("tenants") {
    progress("recording pairs through a group of 100 tenants into a transport that answers 200...")
    figures += await tenantGroupFigures(
        pairs: makePairs(200_000, prefix: "tenant_"), tenantCount: 100, rounds: rounds,
        single: figures.first { $0.name == "pipeline_pairs" }?.value, baseline: figures.baselinePairs)
}

// 5. Real HTTP over loopback: the URLSession transport against a local server, batches full.
if runs("loopback") {
    progress("sending full batches over loopback through URLSession...")
    let server = try LoopbackHTTPServer()
    let pairCount = 50_000
    let pairs = makePairs(pairCount, prefix: "http_")
    let loopbackMessages = await measure(rounds: rounds, operations: pairCount * 2) {
        try? await SegmentPipeline.withPipeline(
            writeKey: WriteKey("bench"), transport: URLSessionTransport(),
            configuration: .init(endpoint: SegmentEndpoint(baseURL: server.baseURL))
        ) { pipeline in
            await recordAll(pairs, into: pipeline)
            blackhole &+= await pipeline.counters.delivered
        }
    }
    server.stop()
    figures.append(
        Figure(
            name: "loopback_messages", value: loopbackMessages, unit: "messages/s",
            baseline: figures.baselinePairs.map { $0 * 2 }))
}

// 6. Memory while the transport is down and a million pairs are offered: the queue's bound must hold.
if only == nil && !countsInstructions && countedChild == nil {
    // Resident memory only says something in a process that has not built and freed other figures' data
    // (the allocator keeps freed pages), so the memory figure is measured in a fresh run of this program.
    progress("measuring memory in a fresh process...")
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--only=memory", "--no-baseline"]
    let pipe = Pipe()
    child.standardOutput = pipe
    try child.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    for line in output.split(separator: "\n") where line.hasPrefix("memory_transport_down ") {
        let fields = line.split(separator: " ")
        if fields.count >= 2, let value = Double(fields[1]) {
            figures.append(Figure(name: "memory_transport_down", value: value, unit: "MiB", baseline: 16))
        }
    }
}
if only == "memory" {
    progress("offering a million pairs while the transport is down...")
    let limits = SegmentPipeline.QueueLimits(maximumMessages: 10_000, maximumBytes: 16 << 20, whenFull: .fail)
    let before = residentBytes()
    var peak = before
    let offered = 1_000_000
    var refused = 0
    let (accepted, handedBackPipeline) = try await SegmentPipeline.withPipeline(
        writeKey: WriteKey("bench"), transport: DownTransport(),
        configuration: .init(queue: limits, shutdownGracePeriod: .zero)
    ) { pipeline in
        var index = 0
        while index < offered {
            // Fresh pairs, each with its own bytes as real traffic has, built and offered one at a time.
            let count = min(50_000, offered - index)
            refused += await offerFresh(count, startingAt: index, of: response, builder: builder, to: pipeline)
            index += count
            peak = max(peak, residentBytes())
        }
        return (await pipeline.counters.accepted, pipeline)
    }
    let handedBack = await handedBackPipeline.handedBackMessages
    let growth = Double(max(peak - before, 0))
    progress(
        "  offered \(offered) pairs: accepted \(accepted) messages, refused \(refused) pairs (queue full), "
            + "handed back \(handedBack.count) messages")
    // The ratio here is to the queue's byte bound, not to the baseline: at most 1.0x plus a constant.
    figures.append(
        Figure(
            name: "memory_transport_down", value: (growth / 1_048_576 * 10).rounded() / 10, unit: "MiB",
            baseline: Double(limits.maximumBytes) / 1_048_576))
}

// Report.
if asJSON {
    var rows = figures.map { figure -> [String: Any] in
        let value = figure.unit == "s" ? (figure.value * 100).rounded() / 100 : figure.value.rounded()
        var row: [String: Any] = ["name": figure.name, "value": value, "unit": figure.unit]
        if let ratio = figure.ratio { row["ratio"] = (ratio * 10).rounded() / 10 }
        return row
    }
    for counted in instructionFigures {
        rows.append([
            "name": counted.name + "_instructions", "value": counted.perOperation.rounded(),
            "unit": "instructions/\(counted.operation)",
        ])
    }
    let data = try JSONSerialization.data(
        withJSONObject: ["figures": rows], options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
} else {
    for figure in figures {
        let ratio =
            figure.ratio.map { String(format: "%.1fx", $0) } ?? (figure.name.hasPrefix("baseline") ? "1.0x" : "-")
        let value =
            figure.unit == "MiB" || figure.unit == "s"
            ? String(format: figure.unit == "s" ? "%.2f" : "%.1f", figure.value) : String(Int(figure.value.rounded()))
        print("\(figure.name) \(value) \(figure.unit) \(ratio)")
    }
    for counted in instructionFigures {
        print("\(counted.name)_instructions \(Int(counted.perOperation.rounded())) instructions/\(counted.operation)")
    }
}
progress("(checksum \(blackhole))")
