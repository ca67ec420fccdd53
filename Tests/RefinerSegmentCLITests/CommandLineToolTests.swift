import Foundation
import RefinerSegmentCLI
import Testing

/// One response line in the JSON form.
private func responseLine(
    id: String,
    user: String = #""id": "u1""#,
    account: String? = #"{"id": "acme"}"#,
    answers: String = #"[{"question": {"id": "q1", "text": "What is your job role?"}, "value": "CEO"}]"#
) -> String {
    let accountField = account.map { #", "account": \#($0)"# } ?? ""
    return
        #"{"id": "\#(id)", "completedAt": "2026-11-20T10:15:00Z", "survey": {"id": "s"}, "user": {\#(user)}\#(accountField), "answers": \#(answers)}"#
}

struct DemoCommandTests {
    @Test
    func demoPrintsTheSeedExampleAsTwoJSONLines() async throws {
        let (status, run) = await ToolHarness.run(["demo"])
        #expect(status == 0)
        #expect(run.stderr.isEmpty)
        let lines = run.stdoutLines
        try #require(lines.count == 2)
        let identify = try jsonLine(lines[0])
        #expect(identify["type"] as? String == "identify")
        #expect(identify["userId"] as? String == "your-user-id")
        #expect(
            identify["traits"] as? [String: String] == [
                "refiner_email": "john.doe@example.com", "refiner_how_big_is_your_team": "10+",
                "refiner_what_is_your_job_role": "CEO",
            ])
        let group = try jsonLine(lines[1])
        #expect(group["type"] as? String == "group")
        #expect(group["userId"] as? String == "your-user-id")
        #expect(group["groupId"] as? String == "your-account-id")
        #expect(
            group["traits"] as? [String: String] == [
                "refiner_employee_count": "1000+", "refiner_industry": "acounting",
            ])
        for object in [identify, group] {
            #expect((object["messageId"] as? String)?.isEmpty == false)
            #expect(object["timestamp"] as? String == "2026-11-20T10:15:00.000Z")
            #expect((object["context"] as? [String: Any])?["library"] != nil)
        }
    }
}

struct KeysCommandTests {
    @Test
    func keysPrintsOneKeyPerLineInOrder() async {
        let (status, run) = await ToolHarness.run(["keys"], input: "What is your job role?\nWhat’s your role?\n")
        #expect(status == 0)
        #expect(run.stdoutLines == ["refiner_what_is_your_job_role", "refiner_whats_your_role"])
    }

    @Test
    func keysUsesIDsForTheFallbackAndNumbersCollisions() async {
        let input = "q7\t今日は\n🎉\nRole\nrole\r\nlast line without break"
        let (status, run) = await ToolHarness.run(["keys"], input: input, chunkSize: 3)
        #expect(status == 0)
        #expect(
            run.stdoutLines == [
                "refiner_question_q7", "refiner_question_2", "refiner_role", "refiner_role_2",
                "refiner_last_line_without_break",
            ])
    }

    @Test
    func keysTakesPrefixAndMaximumLength() async {
        let (status, run) = await ToolHarness.run(
            ["keys", "--prefix", "acme", "--max-length=20"], input: "How many employees work at your company?\n")
        #expect(status == 0)
        #expect(run.stdoutLines == ["acme_how_many"])
    }

    @Test(arguments: [
        ["keys", "--max-length", "3"], ["keys", "--max-length", "many"], ["keys", "--bogus"], ["keys", "file"],
    ])
    func keysRejectsBadOptions(arguments: [String]) async {
        let (status, run) = await ToolHarness.run(arguments, input: "x\n")
        #expect(status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("Usage:"))
    }

    @Test
    func invalidUTF8IsReportedButKeepsOneKeyPerLine() async {
        let bytes: [UInt8] = Array("ok\n".utf8) + [0x66, 0xFF, 0x6F, 0x0A] + Array("fine\n".utf8)
        let (status, run) = await ToolHarness.run(["keys"], inputBytes: bytes)
        #expect(status == 1)
        #expect(run.stdoutLines == ["refiner_ok", "refiner_f_o", "refiner_fine"])
        #expect(run.stderr.contains("line 2"))
    }
}

struct RenderCommandTests {
    @Test
    func renderIsDeterministic() async {
        let input = [responseLine(id: "r1"), responseLine(id: "r2", user: #""anonymousId": "a1""#)].joined(
            separator: "\n")
        let first = await ToolHarness.run(["render"], input: input)
        let second = await ToolHarness.run(["render"], input: input)
        #expect(first.status == 0)
        #expect(first.harness.stdout == second.harness.stdout)
        #expect(first.harness.stdoutLines.count == 4)
    }

    @Test
    func accountTraitsFromTwoUsersMeetInTheSecondGroupCall() async throws {
        let input = [
            responseLine(
                id: "r1", user: #""id": "alice""#,
                answers:
                    #"[{"question": {"id": "q1", "text": "Industry", "attribution": "account"}, "value": "Retail"}]"#),
            responseLine(
                id: "r2", user: #""id": "bob""#,
                answers: #"[{"question": {"id": "q2", "text": "Seats", "attribution": "account"}, "value": 40}]"#),
        ].joined(separator: "\n")
        let (status, run) = await ToolHarness.run(["render"], input: input)
        #expect(status == 0)
        let lines = run.stdoutLines
        try #require(lines.count == 4)
        let group = try jsonLine(lines[3])
        #expect(group["userId"] as? String == "bob")
        let traits = try #require(group["traits"] as? [String: Any])
        #expect(traits["refiner_industry"] as? String == "Retail")
        #expect(traits["refiner_seats"] as? Int == 40)
    }

    @Test
    func userWithoutAccountGetsNoGroupCall() async throws {
        let (status, run) = await ToolHarness.run(["render"], input: responseLine(id: "r1", account: nil))
        #expect(status == 0)
        #expect(try run.stdoutLines.map { try jsonLine($0)["type"] as? String } == ["identify"])
    }

    @Test
    func anonymousUserGetsAnonymousID() async throws {
        let (_, run) = await ToolHarness.run(
            ["render"], input: responseLine(id: "r1", user: #""anonymousId": "anon-7""#))
        for line in run.stdoutLines {
            let object = try jsonLine(line)
            #expect(object["anonymousId"] as? String == "anon-7")
            #expect(object["userId"] == nil)
        }
    }

    @Test
    func badLinesAreReportedWithTheirNumberAndSkipped() async throws {
        let input = [
            responseLine(id: "r1"),
            #"{"id": "r2", "completedAt""#,
            "",
            responseLine(id: "r3", user: #""email": "x@y.z""#),
            responseLine(id: "r4", answers: #"[{"question": {"id": "q1", "text": "N"}, "value": 1e999}]"#),
            responseLine(id: "r5"),
        ].joined(separator: "\n")
        let (status, run) = await ToolHarness.run(["render"], input: input)
        #expect(status == 1)
        let ids = try run.stdoutLines.map { try jsonLine($0)["messageId"] as? String }
        #expect(ids == ["refiner-r1-identify", "refiner-r1-group", "refiner-r5-identify", "refiner-r5-group"])
        #expect(run.stderr.contains("line 2: skipped: invalid input"))
        #expect(run.stderr.contains("line 4: skipped: missing user identity in response 'r3'"))
        #expect(run.stderr.contains("line 5: skipped: invalid input: 'answers[0].value'"))
        #expect(run.stderr.contains("3 of 5 lines skipped"))
    }

    @Test
    func invalidUTF8LineIsSkipped() async {
        let bytes = Array(responseLine(id: "r1").utf8) + [0x0A, 0xC3, 0x28, 0x0A] + Array(responseLine(id: "r2").utf8)
        let (status, run) = await ToolHarness.run(["render"], inputBytes: bytes)
        #expect(status == 1)
        #expect(run.stdoutLines.count == 4)
        #expect(run.stderr.contains("line 2: skipped: invalid input: not valid UTF-8"))
    }

    @Test
    func trackFlagAddsCompletedSurvey() async throws {
        let (status, run) = await ToolHarness.run(["render", "--track"], input: responseLine(id: "r1"))
        #expect(status == 0)
        #expect(try run.stdoutLines.map { try jsonLine($0)["type"] as? String } == ["identify", "group", "track"])
    }
}

struct UsageTests {
    @Test(arguments: [[], ["frobnicate"], ["render", "a", "b"], ["demo", "extra"]])
    func usageErrorsExitTwo(arguments: [String]) async {
        let (status, run) = await ToolHarness.run(arguments)
        #expect(status == 2)
        #expect(run.stderr.contains("Usage: refiner-segment"))
    }

    @Test
    func helpGoesToStandardOutput() async {
        let (status, run) = await ToolHarness.run(["--help"])
        #expect(status == 0)
        #expect(run.stdout.contains("refiner-segment keys") || run.stdout.contains("keys "))
    }
}
