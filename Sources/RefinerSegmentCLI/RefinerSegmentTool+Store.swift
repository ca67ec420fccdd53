import Foundation
import RefinerSegment
import RefinerSegmentFileStore

extension RefinerSegmentTool {
    /// `store status DIR`: what a `send --store DIR` store holds, for an operator, on standard output.
    ///
    /// Per tenant (``FileMessageStore/status()``): messages and bytes held, how old the oldest is, any
    /// `Retry-After` pause in force; then the input cursor and any damage found. It takes the store's lock (opening the store is what a
    /// `send` would do: a torn tail is cut off); a store another process holds is reported with that pid.
    func store(_ arguments: [String]) async throws -> Int32 {
        guard arguments.first == "status" else {
            throw UsageError("store takes a subcommand: store status DIR")
        }
        let options = try Options(Array(arguments.dropFirst()))
        guard options.positional.count == 1, let directory = options.positional.first else {
            throw UsageError("store status takes one DIR")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            io.writeError("refiner-segment: no store at \(directory): it is not a directory\n")
            return Self.failure
        }
        let report: StoreReport
        do {
            report = try await StoreReport.read(directory: directory, now: Date())
        } catch {
            io.writeError("refiner-segment: \(error)\n")
            return Self.failure
        }
        io.writeOutput(Array(report.text.utf8))
        return Self.success
    }
}

/// What `store status` prints, read from a store it holds the lock of.
struct StoreReport {
    var directory: String
    var status: FileMessageStore.Status
    var cursor: InputCursor?
    var cursorProblem: String?
    var now: Date

    /// Opens the store (its lock taken for the moment) and reads what it holds.
    ///
    /// - Throws: ``ToolError`` naming the pid when another process holds the store, or why it cannot be opened.
    static func read(directory: String, now: Date) async throws -> StoreReport {
        let store: FileMessageStore
        do {
            store = try FileMessageStore(directory: URL(fileURLWithPath: directory))
        } catch {
            throw ToolError("\(error): its status is read once that run has ended")
        }
        let status = try await store.status()
        let (cursor, cursorProblem) = InputCursor.decode(mark: store.markAtOpen)
        return StoreReport(
            directory: directory, status: status, cursor: cursor, cursorProblem: cursorProblem, now: now)
    }

    /// The report, a few lines an operator reads at a glance.
    var text: String {
        let files = status.segmentFiles == 1 ? "1 segment file" : "\(status.segmentFiles) segment files"
        var lines = ["store \(directory): \(files), \(Self.bytes(status.storedBytes)) on disk"]
        if status.tenants.isEmpty { lines.append("  nothing waiting, no pause") }
        for tenant in status.tenants {
            var line = "  tenant \(tenant.name): "
            if tenant.messages == 0 {
                line += "nothing waiting"
            } else {
                line += "\(tenant.messages) messages waiting (\(Self.bytes(tenant.bytes)))"
                if let oldest = tenant.oldestAppended {
                    line += ", the oldest accepted \(Self.age(now.timeIntervalSince(oldest))) ago"
                }
            }
            if let end = tenant.pausedUntil, end > now {
                line +=
                    "; paused by Retry-After until \(Self.timestamp(end)) (\(Self.age(end.timeIntervalSince(now))) "
                    + "from now)"
            } else {
                line += "; no pause"
            }
            lines.append(line)
        }
        if let cursor {
            lines.append(
                "  input: accepted through \(cursor.summary) (byte \(cursor.byteOffset)); send --store \(directory) "
                    + "with that input resumes after it")
        } else if let cursorProblem {
            lines.append("  input: \(cursorProblem)")
        } else {
            lines.append("  input: no cursor (no run of a file was cut short)")
        }
        if !status.damage.isEmpty {
            lines.append("  damage found (reported as failed by the next send):")
            lines += status.damage.map { "    \($0)" }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `512 bytes`, `1.5 KiB`, `2.0 MiB`.
    static func bytes(_ count: Int) -> String {
        if count < 1024 { return "\(count) bytes" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(count) / 1024
        var index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        return String(format: "%.1f", value) + " " + units[index]
    }

    /// `42 s`, `5 min 3 s`, `3 h 12 min`, `2 d 4 h`.
    static func age(_ seconds: TimeInterval) -> String {
        let total = max(0, Int(seconds.rounded()))
        let (days, hours, minutes, rest) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return "\(days) d \(hours) h" }
        if hours > 0 { return "\(hours) h \(minutes) min" }
        if minutes > 0 { return "\(minutes) min \(rest) s" }
        return "\(rest) s"
    }

    /// `2026-12-01T03:14:00Z`.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
