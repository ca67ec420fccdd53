import Foundation
import RefinerSegment
import RefinerSegmentCLI
import RefinerSegmentFileStore
import RefinerSegmentTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `send --store DIR` on the built executable where an audit found it lost or repeated messages: the failed
/// file re-sent in place, an append that fails, a drain of the store, a batch the store takes only part of,
/// pretty-printed input.
@Suite(.serialized) struct SendStoreEdgeTests {
    typealias Workspace = SendStoreTests.Workspace
    static let enabled = SendStoreTests.enabled
    static let missing = SendStoreTests.missing

    // MARK: The failed file in place

    /// In place, the failures of a run go to a fresh file that replaces the failed file only at the end,
    /// while the store settles them at once: a stop in between lost them, and the re-run (resuming past
    /// their lines) never read them again. `--store` with the failed file as input is refused.
    @Test(.enabled(if: enabled, missing))
    func theFailedFileInPlaceWithAStoreIsRefusedAndLeftAsItWas() async throws {
        let workspace = try Workspace(count: 0, tag: "inplace")
        defer { workspace.remove() }
        let name = RefinerSegmentTool.defaultFailedFileName
        let original = try builtMessages(10, tag: "inplace")
        try Data(original.utf8).write(to: workspace.url(name))
        chmod(workspace.path(name), 0o600)
        let refusing = try LoopbackHTTPServer { _ in .status(400, body: #"{"error":"bad"}"#) }
        defer { refusing.stop() }
        let run = try workspace.launch(
            ["send", "--endpoint", refusing.baseURL.absoluteString, "--store", "store", name], name: "run")
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("--store cannot re-send the failed file '\(name)' in place"), "\(stderr)")
        #expect(refusing.requests.isEmpty, "nothing is sent")
        #expect(workspace.text(name) == original)
        #expect(!FileManager.default.fileExists(atPath: workspace.path("store")), "the store is not made")
    }

    /// The same with `--tenants`: a tenant's failed file as the input, with a store.
    @Test(.enabled(if: enabled, missing))
    func aTenantsFailedFileInPlaceWithAStoreIsRefused() async throws {
        let workspace = try Workspace(count: 0, tag: "tinplace")
        defer { workspace.remove() }
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        try Data(#"{"acme": {"writeKey": "wk_acme", "endpoint": "\#(server.baseURL)"}}"#.utf8)
            .write(to: workspace.url("tenants.json"))
        let name = "refiner-segment-failed.acme.jsonl"
        let original = try builtMessages(4, tag: "tinplace")
        try Data(original.utf8).write(to: workspace.url(name))
        chmod(workspace.path(name), 0o600)
        let run = try workspace.launch(
            ["send", "--tenants", "tenants.json", "--tenant", "acme", "--store", "store", name], name: "run")
        guard await workspace.finish(run) else { return }
        let stderr = workspace.text("run.err")
        #expect(run.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("--store cannot re-send the failed file '\(name)' in place"), "\(stderr)")
        #expect(server.requests.isEmpty, "nothing is sent")
        #expect(workspace.text(name) == original)
    }
}
