// The crash harness of the file store's tests: records numbered units into a FileMessageStore, one at a
// time, and prints each id once `record` has returned (so the id is durable). The test kills it with
// SIGKILL at random moments, starts it again on the same directory, and finally drains the store.
//
// Usage: refiner-segment-crash-harness DIRECTORY FIRST-ID COUNT
import Foundation
import RefinerSegment
import RefinerSegmentFileStore

/// Never called: the harness records only; the pipeline does not run.
struct UnusedTransport: SegmentTransport {
    func send(_ request: SegmentRequest) async throws -> SegmentResponse { SegmentResponse(statusCode: 500) }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let first = Int(arguments[2]), let count = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: refiner-segment-crash-harness DIRECTORY FIRST-ID COUNT\n".utf8))
    exit(64)
}
do {
    let store = try FileMessageStore(directory: URL(fileURLWithPath: arguments[1]))
    let pipeline = try SegmentPipeline(writeKey: WriteKey("wk_crash"), transport: UnusedTransport(), store: store)
    for id in first..<(first + count) {
        let identify = #"{"type":"identify","messageId":"crash-\#(id)-identify","userId":"u\#(id)"}"#
        let group = #"{"type":"group","messageId":"crash-\#(id)-group","userId":"u\#(id)","groupId":"g"}"#
        try await pipeline.record([
            try SegmentMessage(json: Array(identify.utf8)), try SegmentMessage(json: Array(group.utf8)),
        ])
        FileHandle.standardOutput.write(Data("\(id)\n".utf8))  // unbuffered: printed means durable
    }
} catch {
    FileHandle.standardError.write(Data("refiner-segment-crash-harness: \(error)\n".utf8))
    exit(1)
}
