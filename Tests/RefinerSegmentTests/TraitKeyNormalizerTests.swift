import Foundation
import Testing

@testable import RefinerSegment

/// Whether a key matches `^[a-z0-9]+(_[a-z0-9]+)*$`, as every key must whatever the input.
func isWellFormed(_ key: String) -> Bool {
    key.wholeMatch(of: /[a-z0-9]+(_[a-z0-9]+)*/) != nil
}

struct TraitKeyNormalizerTests {
    let normalizer = try! TraitKeyNormalizer()

    /// One row per rule of Docs/TraitKeys.md, and per language the product meets.
    static let cases: [(text: String, id: String, key: String)] = [
        // The seed example.
        ("What is your job role?", "q1", "refiner_what_is_your_job_role"),
        ("How big is your team?", "q2", "refiner_how_big_is_your_team"),
        // 1. Compatibility decomposition.
        ("ｆｕｌｌｗｉｄｔｈ ｆｉｅｌｄ", "q", "refiner_fullwidth_field"),
        ("Rate ① to ⑤", "q", "refiner_rate_1_to_5"),
        ("ﬁle size", "q", "refiner_file_size"),
        ("x² + y²", "q", "refiner_x2_y2"),
        ("½ price", "q", "refiner_1_2_price"),
        // 2. Combining marks dropped (precomposed and decomposed input alike).
        ("Café naïve résumé", "q", "refiner_cafe_naive_resume"),
        ("e\u{301}te\u{301}", "q", "refiner_ete"),
        // 3. Lowercase.
        ("HELLO World", "q", "refiner_hello_world"),
        // 4. Transliteration of letters that do not decompose.
        ("Straße", "q", "refiner_strasse"),
        ("Æsir Øre Œuvre", "q", "refiner_aesir_ore_oeuvre"),
        ("Łódź Đorđe Þór Iðunn", "q", "refiner_lodz_dorde_thor_idunn"),
        // German, French, Spanish, Turkish.
        ("Wie groß ist Ihr Team?", "q", "refiner_wie_gross_ist_ihr_team"),
        ("Qu’est-ce que vous préférez ?", "q", "refiner_quest_ce_que_vous_preferez"),
        ("¿Cuántos años tienes?", "q", "refiner_cuantos_anos_tienes"),
        ("Işık İstanbul’da mı?", "q", "refiner_isik_istanbulda_mi"),
        // Russian and Ukrainian (ъ and ь vanish).
        ("Какая у вас должность?", "q", "refiner_kakaya_u_vas_dolzhnost"),
        ("Щука и объект", "q", "refiner_shchuka_i_obekt"),
        ("Їжак Євро Ґанок", "q", "refiner_izhak_yevro_ganok"),
        ("ЭЮЯ ЦЧШ ХЫ", "q", "refiner_eyuya_tschsh_khy"),
        // Greek, final sigma included.
        ("Ποιο είναι το όνομά σας;", "q", "refiner_poio_einai_to_onoma_sas"),
        ("Θεός Ψυχή Ξένος", "q", "refiner_theos_psychi_xenos"),
        // 5. Apostrophes inside words, straight and curly, are dropped; elsewhere they separate.
        ("What's your role?", "q", "refiner_whats_your_role"),
        ("What’s your role?", "q", "refiner_whats_your_role"),
        ("Whatʼs your role?", "q", "refiner_whats_your_role"),
        ("It's 5'9", "q", "refiner_its_59"),
        ("'quoted' rock 'n' roll", "q", "refiner_quoted_rock_n_roll"),
        // 6. Runs of anything else become one `_`, none at either end.
        ("  Hello -- World!!  ", "q", "refiner_hello_world"),
        ("a__b\t\tc\nd", "q", "refiner_a_b_c_d"),
        // 7. Nothing left: `question_` and the question id.
        ("あなたの役割は何ですか？", "q7", "refiner_question_q7"),
        ("🎉🚀", "q8", "refiner_question_q8"),
        ("???", "Q 9", "refiner_question_q_9"),
        ("", "", "refiner_question"),
        ("👍🏽‍", "🎉", "refiner_question"),
        // 8. No second prefix.
        ("refiner_email", "q", "refiner_email"),
        ("Refiner Email", "q", "refiner_email"),
        ("refiner", "q", "refiner_refiner"),
    ]

    @Test(arguments: cases)
    func normalizesText(_ row: (text: String, id: String, key: String)) {
        #expect(normalizer.key(for: row.text, questionID: row.id) == row.key)
    }

    @Test(arguments: cases)
    func normalizingAKeyReturnsIt(_ row: (text: String, id: String, key: String)) {
        let key = normalizer.key(for: row.text, questionID: row.id)
        #expect(normalizer.key(for: key, questionID: row.id) == key)
        #expect(isWellFormed(key))
    }

    @Test
    func customPropertyNameReplacesTheText() {
        let question = Question(
            id: "q3", text: "How many employees work at your company?", propertyName: "employee_count")
        #expect(normalizer.key(for: question) == "refiner_employee_count")
        #expect(
            normalizer.key(for: Question(id: "q", text: "x", propertyName: "Employee Count"))
                == "refiner_employee_count")
    }

    // 9. The cap.

    @Test(arguments: [127, 63, 40, 16])
    func longTextIsCutAtAWordBoundary(limit: Int) throws {
        let normalizer = try TraitKeyNormalizer(configuration: .init(maximumLength: limit))
        let text = Array(repeating: "word", count: 60).joined(separator: " ")
        let key = normalizer.key(for: text)
        #expect(key.utf8.count <= limit)
        #expect(key.utf8.count > limit - 5, "only the partial word goes")
        #expect(key.hasPrefix("refiner_word"))
        #expect(key.hasSuffix("_word"))
        #expect(isWellFormed(key))
        #expect(normalizer.key(for: key) == key)
    }

    @Test
    func oneWordLongerThanTheLimitIsCutHard() {
        let key = normalizer.key(for: String(repeating: "a", count: 300))
        #expect(key == "refiner_" + String(repeating: "a", count: 119))
    }

    @Test
    func cutBetweenWordsKeepsTheWholeWord() {
        // "refiner_" is 8 bytes; 119 bytes of body end exactly after a word.
        let body = String(repeating: "a", count: 59) + " " + String(repeating: "b", count: 59) + " tail"
        #expect(
            normalizer.key(for: body) == "refiner_" + String(repeating: "a", count: 59) + "_"
                + String(repeating: "b", count: 59))
    }

    @Test
    func prefixIsNeverCut() throws {
        let normalizer = try TraitKeyNormalizer(configuration: .init(prefix: "a_long_prefix_", maximumLength: 22))
        let key = normalizer.key(for: "supercalifragilistic expialidocious")
        #expect(key.hasPrefix("a_long_prefix_"))
        #expect(key.utf8.count <= 22)
        #expect(isWellFormed(key))
    }

    // The prefix setting.

    @Test(arguments: [
        ("refiner_", "refiner_job"), ("Refiner", "refiner_job"), ("Acme Survey", "acme_survey_job"), ("", "job"),
    ])
    func prefixIsNormalizedWithOneUnderscore(prefix: String, key: String) throws {
        let normalizer = try TraitKeyNormalizer(configuration: .init(prefix: prefix))
        #expect(normalizer.key(for: "Job") == key)
    }

    @Test(arguments: [0, 8, 15])
    func limitWithoutRoomAfterThePrefixIsAConfigurationError(limit: Int) {
        let error = #expect(throws: RefinerSegmentError.self) {
            try TraitKeyNormalizer(configuration: .init(maximumLength: limit))
        }
        #expect(error?.code == .invalidConfiguration)
    }

    // 10. Collisions within one survey.

    @Test
    func collidingTextsAreNumberedInQuestionOrder() throws {
        let questions = [
            Question(id: "a", text: "What is your role?"),
            Question(id: "b", text: "What is your role!"),
            Question(id: "c", text: "what-is-your-role"),
            Question(id: "d", text: "Something else"),
        ]
        #expect(
            try normalizer.keys(for: questions) == [
                "refiner_what_is_your_role", "refiner_what_is_your_role_2", "refiner_what_is_your_role_3",
                "refiner_something_else",
            ])
        // Stable from one response to the next.
        #expect(try normalizer.keys(for: questions) == normalizer.keys(for: questions))
    }

    @Test
    func customNamesWinTheirKeyOverTexts() throws {
        let questions = [
            Question(id: "q1", text: "Industry"),
            Question(id: "q2", text: "Which industry are you in?", propertyName: "industry"),
        ]
        #expect(try normalizer.keys(for: questions) == ["refiner_industry_2", "refiner_industry"])
    }

    @Test
    func suffixDoesNotCollideWithAnExistingKey() throws {
        let questions = [
            Question(id: "q1", text: "Role"), Question(id: "q2", text: "Role 2"), Question(id: "q3", text: "role"),
        ]
        #expect(try normalizer.keys(for: questions) == ["refiner_role", "refiner_role_2", "refiner_role_3"])
    }

    @Test
    func collidingCustomNamesAreAConfigurationError() {
        let questions = [
            Question(id: "q1", text: "A", propertyName: "industry"),
            Question(id: "q2", text: "B", propertyName: "Industry!"),
        ]
        let error = #expect(throws: RefinerSegmentError.self) { try normalizer.keys(for: questions) }
        #expect(error?.code == .collidingPropertyNames)
        #expect(error?.description.contains("q1") == true)
        #expect(error?.description.contains("q2") == true)
    }

    @Test
    func suffixedKeysStayWithinTheLimit() throws {
        let normalizer = try TraitKeyNormalizer(configuration: .init(maximumLength: 20))
        let questions = (1...12).map { Question(id: "q\($0)", text: "Longish words everywhere") }
        let keys = try normalizer.keys(for: questions)
        #expect(Set(keys).count == keys.count)
        for key in keys {
            #expect(key.utf8.count <= 20)
            #expect(isWellFormed(key))
        }
        #expect(keys[0] == "refiner_longish")
        #expect(keys[1] == "refiner_longish_2")
        #expect(keys[11] == "refiner_longish_12")
    }

    // Totality on odd input.

    @Test(arguments: [
        "\u{0}\u{1}\u{1F}", "\u{200F}\u{200D}\u{FEFF}", "\u{10FFFF}", "e\u{301}\u{301}\u{301}", "Z̴̧̛͉a̶͇̾l̷̰̔g̵̟̈́o̷̝͝",
        String(repeating: "é", count: 10_000), "مرحبا بالعالم", "שלום", "नमस्ते", "한국어 질문", "'''", "’a’",
    ])
    func oddInputStillGivesAWellFormedKey(text: String) {
        let key = normalizer.key(for: text, questionID: "q1")
        #expect(isWellFormed(key))
        #expect(key.utf8.count <= 127)
        #expect(normalizer.key(for: key) == key)
    }

    @Test
    func asciiAndGeneralPathsAgree() {
        // The same ASCII text must fold the same way whether or not a non-ASCII scalar sends it down the
        // general path (the é is folded to e, so the keys differ by exactly that letter).
        let ascii = "What's   your (favourite) Job-Role #1?"
        #expect(normalizer.key(for: ascii + " e") == normalizer.key(for: ascii + " é"))
    }
}
