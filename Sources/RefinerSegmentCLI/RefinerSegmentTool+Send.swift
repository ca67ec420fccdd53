import RefinerSegment
import RefinerSegmentURLSession

extension RefinerSegmentTool {
    /// The default file for messages that were not delivered.
    static let defaultFailedFile = "refiner-segment-failed.jsonl"

    /// `send [FILE]`: responses (or already-built Segment messages) in, delivered to Segment in batches.
    ///
    /// The write key comes from `SEGMENT_WRITE_KEY` only. Progress goes to stderr; messages that failed for
    /// good are appended to the failed file as they fail, as JSON Lines ready to be sent again with `send`
    /// (a unit of several messages on one line, as a JSON array). The exit status is 0 only when every line
    /// was read and every message delivered.
    ///
    /// On SIGINT, SIGTERM or SIGHUP (``ToolIO/interruptions``) it stops reading, keeps delivering for
    /// ``SendSession/interruptionGrace``, writes every message read but not delivered to the failed file and
    /// returns 128 + the signal number (130, 143, 129); see ``StopPolicy`` for a second and third signal.
    func send(_ arguments: [String]) async throws -> Int32 {
        // Many workspaces in one run: SendSession+Tenants.swift.
        if arguments.contains(where: { $0 == "--tenants" || $0.hasPrefix("--tenants=") }) {
            return try await sendTenants(arguments)
        }
        let options = try SendOptions(arguments, environment: io.environment)
        let input = try io.openInput(options.inputPath)
        let session: SendSession
        do {
            session = try SendSession(io: io, options: options, transport: URLSessionTransport(), input: input)
        } catch let error as ToolError {
            // The failed file was refused: nothing is sent that could not be kept.
            io.writeError("refiner-segment: \(error)\n")
            return Self.failure
        }
        return await session.run(input)
    }
}
