import Foundation
import RefinerSegment

/// The settings of one `send` run, read from its command line and environment.
struct SendOptions {
    static let valued: Set<String> = [
        "--region", "--endpoint", "--failed", "--prefix", "--max-length", "--max-retry-duration",
        "--profiles", "--store",
    ]

    var writeKey: WriteKey
    var pipeline: SegmentPipeline.Configuration
    var builder: SegmentCallBuilder
    var failedPath: String
    var inputPath: String?
    /// `--profiles FILE`: the collected profiles in a file store kept across runs, instead of memory.
    var profilesPath: String?
    /// `--store DIR`: accepted messages wait in a durable file store in DIR, and a re-run resumes the input.
    var storePath: String?

    /// Reads the arguments after `send` and the write key from `SEGMENT_WRITE_KEY`.
    ///
    /// - Throws: ``UsageError`` naming what is wrong.
    init(_ arguments: [String], environment: [String: String]) throws {
        let options = try Options(arguments, valued: Self.valued, flags: ["--track"])
        guard options.positional.count <= 1 else { throw UsageError("send takes at most one FILE") }
        guard let key = environment["SEGMENT_WRITE_KEY"], !key.isEmpty else {
            throw UsageError("set SEGMENT_WRITE_KEY to the source's write key (it is never read from an argument)")
        }
        writeKey = WriteKey(key)
        pipeline = SegmentPipeline.Configuration()
        pipeline.endpoint = try options.endpoint()
        pipeline.shutdownGracePeriod = SendSession.interruptionGrace
        if let duration = try options.maximumRetryDuration() { pipeline.retry.maximumRetryDuration = duration }
        builder = try options.callBuilder()
        failedPath = options.values["--failed"] ?? RefinerSegmentTool.defaultFailedFile
        inputPath = options.positional.first
        profilesPath = options.values["--profiles"]
        storePath = options.values["--store"]
        if storePath?.isEmpty == true { throw UsageError("--store takes a directory") }
    }
}

extension Options {
    /// The endpoint from `--region us|eu` or `--endpoint URL` (not both); the US region by default.
    func endpoint() throws -> SegmentEndpoint {
        switch (values["--region"], values["--endpoint"]) {
        case (.some, .some):
            throw UsageError("give --region or --endpoint, not both")
        case (let region?, nil):
            guard let endpoint = SegmentEndpoint(region: region) else {
                throw UsageError("--region takes us or eu, not '\(region)'")
            }
            return endpoint
        case (nil, let text?):
            guard let url = URL(string: text), url.scheme != nil, url.host != nil else {
                // The text is not repeated: a mistyped URL may still hold a password.
                throw UsageError(
                    "--endpoint takes a URL such as https://api.segment.io; the value given (\(text.utf8.count) "
                        + "bytes, not shown) is not one")
            }
            return SegmentEndpoint(baseURL: url)
        case (nil, nil):
            return .us
        }
    }

    /// `--max-retry-duration SECONDS`: how long a batch is retried after its first failure before it fails
    /// for good (the retry policy's 12 hours by default).
    func maximumRetryDuration() throws -> Duration? {
        guard let text = values["--max-retry-duration"] else { return nil }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 365 * 86_400 else {
            throw UsageError("--max-retry-duration takes a number of seconds (such as 600), not '\(text)'")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The call builder from `--prefix`, `--max-length` and `--track`.
    func callBuilder() throws -> SegmentCallBuilder {
        var configuration = SegmentCallBuilder.Configuration()
        configuration.traitKeys = try traitKeyConfiguration()
        configuration.sendsCompletedSurveyEvent = flags.contains("--track")
        do {
            return try SegmentCallBuilder(configuration: configuration)
        } catch {
            throw UsageError(error.detail)
        }
    }
}
