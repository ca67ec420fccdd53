import Foundation
import RefinerSegment

// refiner-segment-bench: the speed targets of DESIGN.md, each beside the baseline measured in the same run.
// Run it as `swift run -c release refiner-segment-bench [--json] [--quick]`.

let arguments = Set(CommandLine.arguments.dropFirst())
let asJSON = arguments.contains("--json")
let rounds = arguments.contains("--quick") ? 3 : 5
/// `--only=NAME` runs one group (`keys`, `pairs`...), for profiling.
let only = CommandLine.arguments.first { $0.hasPrefix("--only=") }.map { String($0.dropFirst("--only=".count)) }
func runs(_ group: String) -> Bool { only == nil || only == group }
/// `--no-baseline` skips the baseline figures, for profiling the library alone.
let measuresBaseline = !arguments.contains("--no-baseline")

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
let keys = measure(rounds: rounds, operations: corpus.count * 20_000) {
    for _ in 0..<20_000 { for text in corpus { blackhole &+= normalizer.key(for: text).utf8.count } }
}
figures.append(Figure(name: "baseline_keys", value: baselineKeys, unit: "keys/s"))
figures.append(Figure(name: "trait_keys", value: keys, unit: "keys/s", baseline: baselineKeys))
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
let pairs = measure(rounds: rounds, operations: 200_000) {
    for _ in 0..<200_000 {
        if let built = try? builder.process(response, profile: CollectedProfile()) {
            blackhole &+= built.messages.count
        }
    }
}
figures.append(Figure(name: "baseline_pairs", value: baselinePairs, unit: "pairs/s"))
figures.append(Figure(name: "build_encode_pairs", value: pairs, unit: "pairs/s", baseline: baselinePairs))
}

// Report.
if asJSON {
    let rows = figures.map { figure -> [String: Any] in
        var row: [String: Any] = ["name": figure.name, "value": figure.value.rounded(), "unit": figure.unit]
        if let ratio = figure.ratio { row["ratio"] = (ratio * 10).rounded() / 10 }
        return row
    }
    let data = try JSONSerialization.data(withJSONObject: ["figures": rows], options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
} else {
    for figure in figures {
        let ratio = figure.ratio.map { String(format: "%.1fx", $0) } ?? "1.0x"
        print("\(figure.name) \(Int(figure.value.rounded())) \(figure.unit) \(ratio)")
    }
}
progress("(checksum \(blackhole))")
