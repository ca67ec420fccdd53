import Foundation
import RefinerSegment
import Testing

@Suite("render with Refiner webhooks")
struct RenderWebhookTests {
    @Test func renderPrintsTheFixtureIdentifyCallOnOneLine() async throws {
        let run = await ToolRun.run(["render", "fixture.json"], input: try WebhookCLIFixtures.completedSurvey())
        #expect(run.openedPaths == ["fixture.json"])
        #expect(run.output == WebhookCLIFixtures.fixtureIdentify + "\n")
        #expect(run.error == "")
        #expect(run.status == 0)
    }

    @Test(arguments: [3, 1 << 16])
    func renderReadsBothShapesMixedInOrder(chunkSize: Int) async throws {
        let webhookLine = String(decoding: try WebhookCLIFixtures.completedSurveyOnOneLine(), as: UTF8.self)
        let pretty = String(decoding: try WebhookCLIFixtures.completedSurvey(), as: UTF8.self)
        let viewedLine = webhookLine.replacingOccurrences(of: "Completed Survey", with: "Viewed Survey")
        let input = [
            WebhookCLIFixtures.jsonFormLine, pretty, webhookLine, "", viewedLine, WebhookCLIFixtures.jsonFormLine,
        ]
        .joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8), chunkSize: chunkSize)
        let fixtureLines = pretty.split(separator: "\n", omittingEmptySubsequences: false).count
        #expect(run.outputLines.count == 4)
        #expect(run.outputLines.dropFirst().first == WebhookCLIFixtures.fixtureIdentify)
        #expect(run.outputLines.dropFirst(2).first == WebhookCLIFixtures.fixtureIdentify)
        #expect(run.outputLines.first?.contains(#""refiner_what_is_your_job_role":"CEO""#) == true)
        #expect(run.outputLines.first == run.outputLines.last)
        let viewedLineNumber = 1 + fixtureLines + 2 + 1
        #expect(run.error.hasPrefix("line \(viewedLineNumber): ignored: unhandled event in response "))
        #expect(run.status == 0, "an event other than Completed Survey is not bad input")
    }

    @Test func prettyPrintedDocumentIsReportedByItsLineRange() async throws {
        let input = [
            WebhookCLIFixtures.jsonFormLine,
            "{",
            #"  "triggered_event": "Completed Survey","#,
            #"  "form": {"uuid": "form-1", "name": "A brace } and \" quotes } in a string"},"#,
            #"  "uuid": "contact-1""#,
            "}",
            WebhookCLIFixtures.jsonFormLine,
        ].joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.outputLines.count == 2)
        #expect(
            run.error
                == "lines 2-6: skipped: invalid input: missing field 'response'\n"
                + "refiner-segment: 1 of 3 lines skipped\n"
        )
        #expect(run.status == 1)
    }

    @Test func unterminatedDocumentIsReportedAndEarlierRecordsStillPrint() async throws {
        let input = [WebhookCLIFixtures.jsonFormLine, "{", #"  "uuid": "contact-1","#, #"  "form": {"#].joined(
            separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.outputLines.count == 1)
        #expect(run.error.hasPrefix("lines 2-4: skipped: the JSON document that starts with a lone '{' ends before"))
        #expect(run.status == 1)
    }

    @Test func truncatedWebhookLineIsSkippedWithItsLineNumber() async throws {
        let truncated = String(decoding: try WebhookCLIFixtures.completedSurveyOnOneLine().dropLast(40), as: UTF8.self)
        let input = [truncated, WebhookCLIFixtures.jsonFormLine].joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.outputLines.count == 1)
        #expect(run.error.hasPrefix("line 1: skipped: invalid input: not valid JSON"))
        #expect(run.status == 1)
    }

    @Test(arguments: ["{}", "  {\"id\": 1", "{ \"a\": 1 }"])
    func lineThatIsMoreThanALoneBraceIsOneRecord(line: String) async throws {
        let input = [line, WebhookCLIFixtures.jsonFormLine].joined(separator: "\n")
        let run = await ToolRun.run(["render"], input: Array(input.utf8))
        #expect(run.outputLines.count == 1, "the bad line must not swallow the good one after it")
        #expect(run.error.hasPrefix("line 1: skipped: "))
    }

    @Test func byteOrderMarkBeforeAPrettyPrintedPayloadIsDropped() async throws {
        let input = [0xEF, 0xBB, 0xBF] + (try WebhookCLIFixtures.completedSurvey())
        let run = await ToolRun.run(["render"], input: input)
        #expect(run.output == WebhookCLIFixtures.fixtureIdentify + "\n")
        #expect(run.status == 0)
    }
}
