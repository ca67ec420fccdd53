import Foundation
import Testing

@testable import RefinerSegment

/// Whether `key` matches `^[a-z0-9]+(_[a-z0-9]+)*$`, checked byte by byte (independent of the normalizer and
/// of Regex).
func matchesKeyPattern<Bytes: Sequence<UInt8>>(_ key: Bytes) -> Bool {
    var isEmpty = true
    var afterUnderscore = true  // no `_` may start the key or follow another
    for byte in key {
        isEmpty = false
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            afterUnderscore = false
        case UInt8(ascii: "_"):
            if afterUnderscore { return false }
            afterUnderscore = true
        default:
            return false
        }
    }
    return !isEmpty && !afterUnderscore
}

/// A random normalizer configuration that is valid: a prefix of random text (often the default, sometimes
/// empty) and a maximum length at least 8 bytes past the normalized prefix, often exactly that.
func randomNormalizer(using random: inout SeededRandom) throws -> TraitKeyNormalizer {
    let prefix: String
    switch Int.random(in: 0..<6, using: &random) {
    case 0, 1: prefix = "refiner_"
    case 2: prefix = ""
    case 3: prefix = RandomText.words(maximumCount: 3, using: &random)
    default: prefix = RandomText.string(maximumLength: 12, using: &random)
    }
    let folded = TraitKeyNormalizer.foldBody(prefix)
    let minimum = folded.isEmpty ? 8 : folded.count + 1 + 8
    let maximumLength =
        switch Int.random(in: 0..<4, using: &random) {
        case 0: minimum
        case 1: minimum + Int.random(in: 1...8, using: &random)
        case 2: 127
        default: minimum + Int.random(in: 0...200, using: &random)
        }
    return try TraitKeyNormalizer(configuration: .init(prefix: prefix, maximumLength: max(maximumLength, minimum)))
}

/// The trait-key rules for ASCII text, written plainly from DESIGN.md ("Trait keys", steps 3 and 5 to 9) as
/// a model to compare the normalizer's byte loops against.
func referenceASCIIKey(_ text: String, questionID: String, prefix: String, maximumLength: Int) -> String {
    func isAlphanumeric(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber)
    }
    func fold(_ text: String) -> String {
        let characters = Array(text.unicodeScalars.map(Character.init)).map { Character($0.lowercased()) }
        var words: [String] = []
        var word = ""
        for (index, character) in characters.enumerated() {
            if isAlphanumeric(character) {
                word.append(character)
            } else if character == "'", index > 0, index + 1 < characters.count,
                isAlphanumeric(characters[index - 1]), isAlphanumeric(characters[index + 1])
            {
                continue  // step 5: an apostrophe inside a word is dropped
            } else if !word.isEmpty {
                words.append(word)
                word = ""
            }
        }
        if !word.isEmpty { words.append(word) }
        return words.joined(separator: "_")  // step 6
    }
    var body = fold(text)
    if body.isEmpty {  // step 7
        let id = fold(questionID)
        body = id.isEmpty ? "question" : "question_" + id
    }
    // Step 8: a body that already carries the prefix is not prefixed again.
    var key = !prefix.isEmpty && body.hasPrefix(prefix) && body.count > prefix.count ? body : prefix + body
    // Step 9: cut to the limit, back to the last `_` inside the body when the cut splits a word.
    if key.count > maximumLength {
        let bytes = Array(key.utf8)
        var cut = Array(bytes[..<maximumLength])
        let splitsWord = bytes[maximumLength - 1] != UInt8(ascii: "_") && bytes[maximumLength] != UInt8(ascii: "_")
        if splitsWord, let boundary = cut.lastIndex(of: UInt8(ascii: "_")), boundary > prefix.utf8.count {
            cut = Array(cut[..<boundary])
        }
        while cut.count > prefix.utf8.count, cut.last == UInt8(ascii: "_") { cut.removeLast() }
        key = String(decoding: cut, as: UTF8.self)
    }
    return key
}

/// Property tests of the trait-key normalizer over random Unicode: whatever the text, the prefix and the
/// limit, a key is well formed, prefixed, within the limit, and a fixed point of normalizing.
struct NormalizerPropertyTests {
    static let seed = FuzzSettings.seed

    @Test
    func everyKeyIsWellFormedPrefixedCappedAndIdempotent() async throws {
        let iterations = FuzzSettings.iterations(3000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let normalizer = try randomNormalizer(using: &random)
            let text: String
            switch Int.random(in: 0..<100, using: &random) {
            case 0: text = RandomText.string(count: Int.random(in: 10_000...20_000, using: &random), using: &random)
            case 1..<40: text = RandomText.words(using: &random)
            case 40..<50: text = RandomText.ascii(using: &random)
            default: text = RandomText.string(maximumLength: 120, using: &random)
            }
            let questionID = random.chance(1, in: 3) ? "" : RandomText.string(maximumLength: 10, using: &random)
            let key = normalizer.key(for: text, questionID: questionID)
            let prefix = normalizer.prefix
            let described =
                "\(origin): text \(text.unicodeScalars.count > 200 ? "(long)" : text.debugDescription), "
                + "id \(questionID.debugDescription), prefix '\(prefix)', limit \(normalizer.maximumLength) -> '\(key)'"
            #expect(matchesKeyPattern(key.utf8), "\(described)")
            #expect(key.utf8.count <= normalizer.maximumLength, "\(described)")
            if !prefix.isEmpty {
                #expect(key.hasPrefix(prefix), "\(described)")
                #expect(matchesKeyPattern(key.utf8.dropFirst(prefix.utf8.count)), "\(described)")
            }
            #expect(normalizer.key(for: key) == key, "not idempotent: \(described)")
            #expect(normalizer.key(for: key, questionID: questionID) == key, "not idempotent: \(described)")
            // The byte loop (fast path) and the general path that builds the key as an array agree.
            let general = String(decoding: normalizer.keyBytes(for: text, questionID: questionID), as: UTF8.self)
            #expect(general == key, "paths disagree (general '\(general)'): \(described)")
        }
    }

    @Test
    func asciiKeysMatchTheRulesAsWritten() async throws {
        let iterations = FuzzSettings.iterations(3000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let normalizer = try randomNormalizer(using: &random)
            let text = random.chance(1, in: 2) ? RandomText.ascii(using: &random) : wordsInASCII(using: &random)
            let questionID = random.chance(1, in: 2) ? "" : RandomText.ascii(maximumLength: 8, using: &random)
            let key = normalizer.key(for: text, questionID: questionID)
            let expected = referenceASCIIKey(
                text, questionID: questionID, prefix: normalizer.prefix, maximumLength: normalizer.maximumLength)
            #expect(
                key == expected,
                "\(origin): text \(text.debugDescription), id \(questionID.debugDescription), prefix '\(normalizer.prefix)', limit \(normalizer.maximumLength)"
            )
        }
    }

    @Test
    func asciiFastPathAgreesWithTheGeneralPath() async throws {
        let iterations = FuzzSettings.iterations(3000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let normalizer = try randomNormalizer(using: &random)
            let text = random.chance(1, in: 2) ? RandomText.ascii(using: &random) : wordsInASCII(using: &random)
            let described =
                "\(origin): text \(text.debugDescription), prefix '\(normalizer.prefix)', limit \(normalizer.maximumLength)"
            // A non-ASCII scalar sends the text down the general path; these ones fold to what they stand for.
            #expect(normalizer.key(for: text + " é") == normalizer.key(for: text + " e"), "\(described)")
            #expect(normalizer.key(for: "Ｘ " + text) == normalizer.key(for: "x " + text), "\(described)")
            #expect(normalizer.key(for: text + "\u{0301}") == normalizer.key(for: text), "\(described)")
            #expect(normalizer.key(for: text + "\u{200B}") == normalizer.key(for: text + " "), "\(described)")
            // The curly apostrophes behave as the straight one.
            let curly = text.replacingOccurrences(of: "'", with: "\u{2019}")
            let modifier = text.replacingOccurrences(of: "'", with: "\u{02BC}")
            #expect(normalizer.key(for: curly) == normalizer.key(for: text), "\(described)")
            #expect(normalizer.key(for: modifier) == normalizer.key(for: text), "\(described)")
        }
    }

    /// Swift compares strings by canonical equivalence (so do `Traits` and the builder's key cache), and
    /// step 1 of the rules is NFKD: texts that differ only in normalization form must give the same key.
    @Test
    func textsInAnyNormalizationFormGiveTheSameKey() async throws {
        let iterations = FuzzSettings.iterations(2000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let normalizer = try randomNormalizer(using: &random)
            let raw =
                random.chance(1, in: 2)
                ? RandomText.words(using: &random) : RandomText.string(maximumLength: 40, using: &random)
            // Only scalars of the Unicode version the table was made from (14.0): a newer Foundation may
            // decompose characters added since, which the table rightly leaves alone.
            var scalars = String.UnicodeScalarView()
            for scalar in raw.unicodeScalars {
                guard let age = scalar.properties.age, age.major < 14 || (age.major == 14 && age.minor == 0) else {
                    continue
                }
                scalars.append(scalar)
            }
            let text = String(scalars)
            let key = normalizer.key(for: text, questionID: "q")
            for (form, variant) in [
                ("NFC", text.precomposedStringWithCanonicalMapping), ("NFD", text.decomposedStringWithCanonicalMapping),
                ("NFKC", text.precomposedStringWithCompatibilityMapping),
                ("NFKD", text.decomposedStringWithCompatibilityMapping),
            ] {
                let variantKey = normalizer.key(for: variant, questionID: "q")
                #expect(
                    variantKey == key,
                    "\(origin): \(form) of \(text.debugDescription) (\(variant.debugDescription)) gives '\(variantKey)', not '\(key)'"
                )
            }
        }
    }

    @Test
    func surveyKeysAreUniqueWellFormedAndStable() async throws {
        let iterations = FuzzSettings.iterations(1000)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let normalizer = try randomNormalizer(using: &random)
            // Texts and names from small pools, so that collisions are common.
            let texts = (0..<Int.random(in: 1...6, using: &random)).map { _ in
                random.chance(1, in: 2)
                    ? RandomText.words(maximumCount: 3, using: &random)
                    : RandomText.string(maximumLength: 8, using: &random)
            }
            let names = (0..<Int.random(in: 1...4, using: &random)).map { _ in
                RandomText.words(maximumCount: 2, using: &random)
            }
            let count =
                random.chance(1, in: 10)
                ? Int.random(in: 17...60, using: &random) : Int.random(in: 0...16, using: &random)
            let questions = (0..<count).map { position in
                Question(
                    id: "q\(position)",
                    text: random.pick(texts),
                    propertyName: random.chance(1, in: 5) ? random.pick(names) : nil
                )
            }
            let customKeys = questions.compactMap { question in
                question.propertyName.map { normalizer.key(for: $0, questionID: question.id) }
            }
            let customNamesCollide = Set(customKeys).count < customKeys.count
            let described =
                "\(origin): prefix '\(normalizer.prefix)', limit \(normalizer.maximumLength), questions "
                + questions.map { "\($0.text.debugDescription)/\($0.propertyName?.debugDescription ?? "-")" }.joined(
                    separator: ", ")
            do {
                let keys = try normalizer.keys(for: questions)
                #expect(!customNamesCollide, "colliding custom names were accepted: \(described)")
                #expect(keys.count == questions.count, "\(described)")
                #expect(Set(keys).count == keys.count, "keys repeat: \(keys) for \(described)")
                for (key, question) in zip(keys, questions) {
                    #expect(matchesKeyPattern(key.utf8), "'\(key)': \(described)")
                    #expect(key.utf8.count <= normalizer.maximumLength, "'\(key)': \(described)")
                    #expect(normalizer.prefix.isEmpty || key.hasPrefix(normalizer.prefix), "'\(key)': \(described)")
                    if let name = question.propertyName {
                        #expect(key == normalizer.key(for: name, questionID: question.id), "\(described)")
                    }
                }
                // A text question keeps its own key unless an earlier question took it.
                var assigned = Set(customKeys)
                for (key, question) in zip(keys, questions) where question.propertyName == nil {
                    let base = normalizer.key(for: question)
                    if !assigned.contains(base) { #expect(key == base, "\(described)") }
                    assigned.insert(key)
                }
                #expect(try normalizer.keys(for: questions) == keys, "not stable: \(described)")
            } catch {
                #expect(error.code == .collidingPropertyNames, "\(error): \(described)")
                #expect(customNamesCollide, "\(error): \(described)")
            }
        }
    }

    @Test
    func configurationsWithoutRoomAfterThePrefixAreRejected() async {
        let iterations = FuzzSettings.iterations(500)
        for index in 0..<iterations {
            await FuzzSettings.shareThePool()
            var random = SeededRandom(seed: Self.seed, case: index)
            let origin = FuzzSettings.origin(seed: Self.seed, case: index)
            let prefix = RandomText.string(maximumLength: 20, using: &random)
            let folded = TraitKeyNormalizer.foldBody(prefix)
            let minimum = folded.isEmpty ? 8 : folded.count + 1 + 8
            let tooShort = Int.random(in: Int.min...(minimum - 1), using: &random)
            for length in [minimum - 1, tooShort, 0] {
                #expect(
                    throws: RefinerSegmentError.self, "\(origin): prefix \(prefix.debugDescription), limit \(length)"
                ) {
                    try TraitKeyNormalizer(configuration: .init(prefix: prefix, maximumLength: length))
                }
            }
            #expect(
                (try? TraitKeyNormalizer(configuration: .init(prefix: prefix, maximumLength: minimum))) != nil,
                "\(origin): prefix \(prefix.debugDescription), limit \(minimum)"
            )
        }
    }
}

/// Question-like ASCII text: words, spaces, apostrophes and punctuation.
private func wordsInASCII(using random: inout SeededRandom) -> String {
    let count = Int.random(in: 1...30, using: &random)
    var text = ""
    for index in 0..<count {
        if index > 0 { text += random.pick([" ", " ", "'", "_", "-", "?", "  ", "''", "' "]) }
        text += random.pick(["What", "is", "your", "job", "role", "refiner", "refiner_x", "Q", "9", "a'b", "x"])
        if random.chance(1, in: 8) { text += String(repeating: "w", count: Int.random(in: 20...140, using: &random)) }
    }
    return text
}
