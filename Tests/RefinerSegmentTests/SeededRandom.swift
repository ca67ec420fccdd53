import Foundation

/// A small seeded generator (SplitMix64) so every property and fuzz run is reproducible.
///
/// Each case of a property test gets its own generator, derived from the run's seed and the case's index,
/// so a failing case can be replayed alone whatever the iteration count: the failure message names both.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// The generator of case `index` of a run seeded with `seed`.
    init(seed: UInt64, case index: Int) {
        var mixer = SeededRandom(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD6E8_FEB8_6659_FD93))
        state = mixer.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `true` with probability `numerator / denominator`.
    mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        Int.random(in: 0..<denominator, using: &self) < numerator
    }

    /// One of `elements`, which must not be empty.
    mutating func pick<Element>(_ elements: [Element]) -> Element {
        elements[Int.random(in: 0..<elements.count, using: &self)]
    }
}

/// The knobs of the property and fuzz tests: the seed and the iteration count, overridable from the
/// environment for a longer local run (`REFINER_FUZZ_SEED=0x1234 REFINER_FUZZ_ITERATIONS=100000 swift test`).
enum FuzzSettings {
    /// Hands the thread back once per case: the cooperative pool has one thread per core, and tests that
    /// wait on the network (timeouts, retries) run on it too.
    static func shareThePool() async {
        await Task.yield()
    }

    /// The seed every run uses unless `REFINER_FUZZ_SEED` (decimal, or hex with `0x`) says otherwise.
    static let defaultSeed: UInt64 = 0x5EED_2026_1125_0006

    static var seed: UInt64 {
        guard let text = ProcessInfo.processInfo.environment["REFINER_FUZZ_SEED"] else { return defaultSeed }
        let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        return parsed ?? defaultSeed
    }

    /// `defaultCount`, or the count `REFINER_FUZZ_ITERATIONS` asks for, scaled to this suite's default
    /// (so `REFINER_FUZZ_ITERATIONS=10000` runs every property 10,000 times).
    static func iterations(_ defaultCount: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment["REFINER_FUZZ_ITERATIONS"], let count = Int(text),
            count > 0
        else { return defaultCount }
        return count
    }

    /// Where a failure came from, for `#expect` comments: enough to replay the case.
    static func origin(seed: UInt64, case index: Int) -> String {
        "REFINER_FUZZ_SEED=0x\(String(seed, radix: 16)), case \(index)"
    }
}

/// Random text weighted toward the scalars that break normalizers and JSON writers.
enum RandomText {
    /// Scalars worth trying often: punctuation, apostrophes, marks, joiners, direction marks, compatibility
    /// characters, letters of the transliteration table, planes beyond the first.
    static let interesting: [Unicode.Scalar] = [
        "'", "\u{2019}", "\u{02BC}", "\u{2018}", "`", "\"", "\\", "_", "-", " ", "\t", "\n", "\r", "\u{0}",
        "\u{7F}", "\u{85}", "\u{A0}", "\u{AD}", "\u{200B}", "\u{200C}", "\u{200D}", "\u{200E}", "\u{200F}",
        "\u{202A}", "\u{202E}", "\u{2028}", "\u{2029}", "\u{2066}", "\u{FEFF}", "\u{FFFD}", "\u{FFFF}",
        "\u{0301}", "\u{0308}", "\u{0327}", "\u{036F}", "\u{20DD}", "\u{1AB0}", "\u{E0001}", "\u{E0100}",
        "ß", "æ", "Æ", "ø", "Ø", "œ", "Œ", "ł", "Ł", "đ", "Đ", "þ", "Þ", "ð", "ı", "İ", "ŉ", "ẞ", "ǅ",
        "é", "É", "ñ", "ü", "Å", "ç", "ÿ",
        "ж", "Щ", "ъ", "ь", "ю", "Я", "і", "є", "ґ", "Ё",
        "α", "Ω", "ς", "σ", "ΐ", "θ", "ψ", "ϐ",
        "ｆ", "Ａ", "１", "＿", "＇", "①", "⑳", "½", "¼", "™", "ﬁ", "ﬀ", "ﬃ", "㎏", "℃", "Ⅻ", "²", "ª", "º",
        "µ", "ǆ", "ĳ", "㍿", "㈱",
        "日", "本", "語", "한", "글", "ア", "ｱ", "ا", "ע", "ह", "ก",
        "😀", "👍", "🏽", "👨", "🇫", "🇷", "🧑", "💻",
        "𝐀", "𝕫", "𝟘", "🄰", "🅰", "𐐀", "𠀀", "\u{10FFFF}", "\u{10000}", "\u{F0000}",
    ]

    /// One scalar: ASCII half the time, an interesting one a third, the rest from anywhere in Unicode.
    static func scalar(using random: inout SeededRandom) -> Unicode.Scalar {
        switch Int.random(in: 0..<12, using: &random) {
        case 0..<5: return Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &random))
        case 5: return Unicode.Scalar(UInt8.random(in: 0...0x7F, using: &random))
        case 6..<9: return random.pick(interesting)
        case 9: return anyScalar(in: 0x80...0x2FFF, using: &random)
        case 10: return anyScalar(in: 0x3000...0xFFFF, using: &random)
        default: return anyScalar(in: 0x1_0000...0x10_FFFF, using: &random)
        }
    }

    /// A scalar from `range`, skipping the surrogate code points (they are not scalars).
    static func anyScalar(in range: ClosedRange<UInt32>, using random: inout SeededRandom) -> Unicode.Scalar {
        while true {
            if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &random)) { return scalar }
        }
    }

    /// A string of up to `maximumLength` scalars (usually short; sometimes empty).
    static func string(maximumLength: Int = 40, using random: inout SeededRandom) -> String {
        let count = random.chance(1, in: 20) ? 0 : Int.random(in: 1...maximumLength, using: &random)
        return string(count: count, using: &random)
    }

    /// A string of exactly `count` scalars.
    static func string(count: Int, using random: inout SeededRandom) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<count { scalars.append(scalar(using: &random)) }
        return String(scalars)
    }

    /// Mostly words, as question texts are: ASCII words with spaces, punctuation and the odd foreign word.
    static func words(maximumCount: Int = 12, using random: inout SeededRandom) -> String {
        let count = Int.random(in: 1...maximumCount, using: &random)
        var text = ""
        for index in 0..<count {
            if index > 0 { text += random.pick([" ", " ", " ", "-", ", ", "'", "’", "  ", "/"]) }
            text +=
                random.chance(1, in: 6)
                ? string(maximumLength: 6, using: &random)
                : random.pick(["what", "is", "your", "Job", "ROLE", "team", "size", "NPS", "2026", "a1b2", "x"])
        }
        if random.chance(1, in: 2) { text += random.pick(["?", "!", ".", " ?", "…", ""]) }
        return text
    }

    /// Printable ASCII only (with the odd tab): the normalizer's byte-loop path.
    static func ascii(maximumLength: Int = 60, using random: inout SeededRandom) -> String {
        let count = Int.random(in: 0...maximumLength, using: &random)
        var bytes: [UInt8] = []
        for _ in 0..<count {
            bytes.append(
                random.chance(1, in: 4)
                    ? random.pick(Array(" '_-?.'\t".utf8)) : UInt8.random(in: 0x20...0x7E, using: &random)
            )
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
