import Foundation
import RefinerSegment

/// The `--tenants FILE` of `send`: which workspaces one run delivers to.
///
/// FILE is a JSON object from tenant name to its settings:
///
/// ```json
/// {"acme": {"writeKey": "...", "endpoint": "https://collector.example"},
///  "globex": {"writeKeyEnv": "GLOBEX_WRITE_KEY", "region": "eu"}}
/// ```
///
/// Each tenant gives its write key inline (`writeKey`) or the name of an environment variable that holds it
/// (`writeKeyEnv`), and a `region` (`us`, `eu`) or an `endpoint` URL (neither: the US region). A tenant's
/// name is also part of its failed file's name, so it is limited to letters, digits, `.`, `_` and `-`, and
/// does not start with `.`. Errors name the file and the tenant, never a key.
struct TenantsFile {
    /// One tenant's settings.
    struct Tenant {
        var name: String
        var writeKey: WriteKey
        var endpoint: SegmentEndpoint
    }

    /// The tenants, by name.
    var tenants: [String: Tenant]

    /// The names, sorted: the order of progress lines and summaries.
    var names: [String] { tenants.keys.sorted() }

    /// Reads and checks the file's bytes.
    ///
    /// - Throws: ``UsageError`` naming the file, the tenant and what is wrong.
    init(bytes: [UInt8], path: String, environment: [String: String]) throws {
        func invalid(_ detail: String) -> UsageError { UsageError("--tenants \(path): \(detail)") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw invalid("not valid JSON")
        }
        guard let entries = object as? [String: Any] else {
            throw invalid("must hold a JSON object from tenant name to its settings")
        }
        guard !entries.isEmpty else { throw invalid("names no tenant") }
        var tenants: [String: Tenant] = [:]
        for (name, value) in entries {
            guard Self.isValidName(name) else {
                throw invalid(
                    "tenant name '\(LogText.singleLine(name))' may hold only letters, digits, '.', '_' and '-', "
                        + "and may not start with '.'")
            }
            func fail(_ detail: String) -> UsageError { invalid("tenant '\(name)': \(detail)") }
            guard let settings = value as? [String: Any] else { throw fail("its settings must be a JSON object") }
            let known: Set<String> = ["writeKey", "writeKeyEnv", "region", "endpoint"]
            if let unknown = settings.keys.sorted().first(where: { !known.contains($0) }) {
                throw fail("unknown setting '\(LogText.singleLine(unknown))'")
            }
            let key: String
            switch (settings["writeKey"], settings["writeKeyEnv"]) {
            case (.some, .some):
                throw fail("give writeKey or writeKeyEnv, not both")
            case (let inline?, nil):
                // The value is never repeated: it is a secret, even when it is malformed.
                guard let text = inline as? String, !text.isEmpty else {
                    throw fail("writeKey must be a non-empty string")
                }
                key = text
            case (nil, let variable?):
                guard let variable = variable as? String, !variable.isEmpty else {
                    throw fail("writeKeyEnv must name an environment variable")
                }
                guard let text = environment[variable], !text.isEmpty else {
                    throw fail("the environment variable \(LogText.singleLine(variable)) is not set or empty")
                }
                key = text
            case (nil, nil):
                throw fail("give writeKey or writeKeyEnv")
            }
            let endpoint: SegmentEndpoint
            switch (settings["region"], settings["endpoint"]) {
            case (.some, .some):
                throw fail("give region or endpoint, not both")
            case (let region?, nil):
                guard let region = region as? String, let known = SegmentEndpoint(region: region) else {
                    throw fail("region must be us or eu")
                }
                endpoint = known
            case (nil, let text?):
                guard let text = text as? String, let url = URL(string: text), url.scheme != nil, url.host != nil else {
                    // Not repeated: a mistyped URL may hold a password.
                    throw fail("endpoint must be a URL such as https://api.segment.io")
                }
                endpoint = SegmentEndpoint(baseURL: url)
            case (nil, nil):
                endpoint = .us
            }
            tenants[name] = Tenant(name: name, writeKey: WriteKey(key), endpoint: endpoint)
        }
        self.tenants = tenants
    }

    /// Letters, digits, `.`, `_` and `-`, at most 100 of them, not starting with `.`: safe in a file name.
    static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 100, !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    /// The failed file of a tenant: the `--failed` path with the tenant's name before its extension
    /// (`refiner-segment-failed.jsonl` gives `refiner-segment-failed.acme.jsonl`).
    static func failedPath(_ base: String, tenant: String) -> String {
        let slash = base.lastIndex(of: "/")
        let nameStart = slash.map { base.index(after: $0) } ?? base.startIndex
        if let dot = base[nameStart...].lastIndex(of: "."), dot > nameStart {
            return String(base[..<dot]) + "." + tenant + String(base[dot...])
        }
        return base + "." + tenant
    }
}
