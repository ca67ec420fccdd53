import Foundation
import RefinerSegment

/// The `refiner-segment` command-line tool, on RefinerSegment's public API only.
///
/// Standard output carries data, standard error progress and errors. Exit status: 0 when everything
/// succeeded, 1 when some input was rejected or could not be read, 2 for a usage error.
public struct RefinerSegmentTool: Sendable {
    /// Everything succeeded.
    public static let success: Int32 = 0
    /// Some input was rejected (and reported), or could not be read.
    public static let failure: Int32 = 1
    /// The command line was wrong.
    public static let usageError: Int32 = 2
    /// `send` could not save every undelivered message: a third signal stopped it at once, or the failed file
    /// and standard output both failed.
    public static let abandoned: Int32 = 3

    let io: ToolIO

    /// Creates the tool over an I/O set (``ToolIO/standard`` for the real process).
    public init(io: ToolIO) {
        self.io = io
    }

    /// Runs one command line (without the program name) and returns the exit status.
    public func run(_ arguments: [String]) async -> Int32 {
        guard let command = arguments.first else {
            io.writeError(Self.usage)
            return Self.usageError
        }
        let rest = Array(arguments.dropFirst())
        do {
            switch command {
            case "demo": return try demo(rest)
            case "keys": return try keys(rest)
            case "render": return try render(rest)
            case "send": return try await send(rest)
            case "store": return try await store(rest)
            case "help", "--help", "-h":
                io.writeOutput(Array(Self.usage.utf8))
                return Self.success
            default:
                throw UsageError("unknown command '\(command)'")
            }
        } catch let error as UsageError {
            io.writeError("refiner-segment: \(error.description)\n\n\(Self.usage)")
            return Self.usageError
        } catch {
            io.writeError("refiner-segment: \(error)\n")
            return Self.failure
        }
    }

    static let usage = """
        Usage: refiner-segment <command> [options]

        Turns completed Refiner survey responses into Segment identify and group calls.

        Commands:
          demo                 Print the seed example's identify and group calls, one JSON object per line,
                               exactly as they would be sent (no network).
          keys                 Read question texts from stdin, one per line (TEXT or ID<TAB>TEXT), and
                               print one trait key per line, in order. Options:
                                 --prefix PREFIX       key prefix (default refiner_)
                                 --max-length N        longest key in bytes, prefix included (default 127)
          render [FILE]        Read responses as JSON Lines from FILE (or stdin, or -) and print every
                               Segment message one per line, in sending order. A record is a response
                               in its JSON form or a Refiner webhook payload, told apart by shape; a line
                               holding only '{' starts a pretty-printed document that runs until its
                               braces balance (or a line that cannot continue it, which starts a new
                               record). Bad records are reported on stderr with their line
                               numbers and skipped; webhook events other than 'Completed Survey' are
                               noted as ignored. Options:
                                 --prefix PREFIX, --max-length N   as for keys
                                 --track               also send a 'Completed Survey' track call
                                 --profiles FILE       keep the collected profiles in FILE (created if
                                                       needed, kept across runs) instead of memory
          send [FILE]          Read responses (or already-built Segment messages, such as render's output or
                               a failed file) as JSON Lines from FILE or stdin and deliver them to Segment in
                               batches. The write key comes from SEGMENT_WRITE_KEY, never from an argument.
                               Progress on stderr. Options:
                                 --region us|eu        Segment region (default us)
                                 --endpoint URL        any Segment-compatible base URL instead (http only for
                                                       loopback)
                                 --failed FILE         where undelivered messages are appended as JSON Lines,
                                                       as they fail (default refiner-segment-failed.jsonl;
                                                       created 0600; a unit of several messages is one line,
                                                       a JSON array). Sending that file again re-sends it in
                                                       place: it is replaced by what is still undelivered
                                                       once it was read to its end (removed when nothing is)
                                 --max-retry-duration SECONDS   how long a batch is retried after its first
                                                       failure before it fails for good (default 43200)
                                 --prefix, --max-length, --track, --profiles FILE   as for render
                                 --store DIR           keep every accepted message in a durable store in DIR
                                                       (created if needed; one send at a time) until it is
                                                       delivered or written to the failed file. A run first
                                                       sends what DIR still holds, then the input; a run cut
                                                       short (kill -9, a crash, a signal) is finished by the
                                                       same command: a FILE whose first bytes are unchanged
                                                       resumes after the last line DIR accepted (a pipe is
                                                       read in full; Segment drops repeats by messageId)
                                 --tenants FILE        many workspaces in one run: FILE maps tenant names to
                                                       {"writeKey" or "writeKeyEnv", "region" or "endpoint"};
                                                       each record's "tenant" field picks one; progress and
                                                       summary per tenant; failed files per tenant
                                                       (FAILED.NAME.jsonl); with --store DIR, one store
                                                       for every tenant. Docs/Tenants.md
                                 --tenant NAME         the tenant of records without a "tenant" field
                               On SIGINT, SIGTERM or SIGHUP it stops reading, delivers for up to 1 s more,
                               writes every message read but not delivered to the failed file and exits 130,
                               143 or 129; sending that file again finishes the job. A second signal within
                               0.5 s is the same stop; a later one writes the failed file at once and exits;
                               a third exits at once with status 3. With --store, what was accepted stays
                               in DIR instead of going to the failed file.
          store status DIR     Show what a send --store DIR store holds: per tenant the messages and bytes
                               waiting, how old the oldest is, any Retry-After pause in force; the input
                               cursor; damage found on opening. A store in use names the pid of its send.
          help                 Show this text.

        Exit status: 0 when everything succeeded, 1 when some input was rejected or some message was not
        delivered, 2 for a usage error, 3 when send could not save every undelivered message (a third signal, or
        neither the failed file nor standard output could be written), 128 + the signal number when send was
        interrupted.

        """
}

/// A command line the tool does not understand.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The options a command takes, read from its arguments.
struct Options {
    var values: [String: String] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    /// Reads `arguments`: `--name value` or `--name=value` for the names in `valued`, `--flag` for those in
    /// `flags`; anything else that starts with `-` (but `-` alone) is an error.
    init(_ arguments: [String], valued: Set<String> = [], flags allowedFlags: Set<String> = []) throws {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("-"), argument != "-" else {
                positional.append(argument)
                continue
            }
            var name = argument
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            if valued.contains(name) {
                if let inlineValue {
                    values[name] = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("\(name) needs a value") }
                    values[name] = arguments[index]
                    index += 1
                }
            } else if allowedFlags.contains(name), inlineValue == nil {
                flags.insert(name)
            } else {
                throw UsageError("unknown option '\(argument)'")
            }
        }
    }

    /// The trait-key settings from `--prefix` and `--max-length`.
    func traitKeyConfiguration() throws -> TraitKeyNormalizer.Configuration {
        var configuration = TraitKeyNormalizer.Configuration()
        if let prefix = values["--prefix"] { configuration.prefix = prefix }
        if let text = values["--max-length"] {
            guard let length = Int(text), length > 0 else {
                throw UsageError("--max-length takes a positive whole number, not '\(text)'")
            }
            configuration.maximumLength = length
        }
        return configuration
    }
}
