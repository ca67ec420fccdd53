#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where batches go: a Segment region or any Segment-compatible base URL (a proxy, a collector).
///
/// Requests go to `{baseURL}/v1/batch`. Plain `http://` is accepted only for loopback hosts (an IPv4
/// literal in `127.0.0.0/8`, `::1`, or exactly `localhost`) unless
/// ``SegmentPipeline/Configuration/allowsInsecureHTTP`` is set, because the write key travels in every
/// request. A base URL with a query, a fragment or credentials (`user:password@`) is refused: the first two
/// would corrupt the request path, and credentials would end up in logs. Its description never shows them.
public struct SegmentEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The base URL, such as `https://api.segment.io`.
    public var baseURL: URL

    /// An endpoint at a base URL; `/v1/batch` is appended to it.
    public init(baseURL: URL) {
        self.baseURL = baseURL
    }

    /// Segment's US region (the default): `https://api.segment.io`.
    public static let us = SegmentEndpoint(baseURL: URL(string: "https://api.segment.io")!)
    /// Segment's EU region: `https://events.eu1.segmentapis.com`.
    public static let eu = SegmentEndpoint(baseURL: URL(string: "https://events.eu1.segmentapis.com")!)

    /// The endpoint of a region by its name, `us` or `eu`; `nil` for any other name.
    public init?(region: String) {
        switch region.lowercased() {
        case "us": self = .us
        case "eu": self = .eu
        default: return nil
        }
    }

    /// `{baseURL}/v1/batch`, without a doubled slash.
    public var batchURL: URL {
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return URL(string: base + "/v1/batch") ?? baseURL
    }

    /// Whether the host is a loopback address, where plain HTTP does not leave the machine: an IPv4 literal
    /// in `127.0.0.0/8` (four decimal parts), `::1` (with or without brackets), or exactly `localhost`.
    ///
    /// A name that merely starts like a loopback address (`127.0.0.1.nip.io`) is not loopback: DNS can
    /// point it anywhere.
    public var isLoopback: Bool {
        guard let host = baseURL.host else { return false }
        return Self.isLoopbackHost(host)
    }

    /// The base URL as text, without credentials, query or fragment, so that printing an endpoint cannot
    /// reveal a password (such an endpoint is refused anyway).
    public var description: String {
        guard hasCredentials || baseURL.query != nil || baseURL.fragment != nil,
            var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false)
        else { return baseURL.absoluteString }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "(an endpoint URL)"
    }

    private var hasCredentials: Bool { baseURL.user != nil || baseURL.password != nil }

    /// Whether `host` (as `URL.host` gives it) names this machine's loopback interface.
    static func isLoopbackHost(_ host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "::1" { return true }
        return ipv4Literal(host)?.first == 127
    }

    /// The four parts of a dotted-quad IPv4 literal (`127.0.0.1`), or `nil` for anything else: no shorthand
    /// (`127.1`), no leading zeros (which some resolvers read as octal), no trailing dot.
    static func ipv4Literal(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.utf8.count), part.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                part == "0" || !part.hasPrefix("0"), let octet = UInt8(part)
            else { return nil }
            octets.append(octet)
        }
        return octets
    }

    /// Checks the URL: `https`, or `http` for loopback hosts or when insecure HTTP is allowed; a host; no
    /// credentials, query or fragment.
    func validate(allowingInsecureHTTP: Bool) throws(SegmentDeliveryError) {
        func invalid(_ detail: String) -> SegmentDeliveryError {
            SegmentDeliveryError(code: .invalidConfiguration, detail: "the endpoint \(self) " + detail)
        }
        switch baseURL.scheme?.lowercased() {
        case "https":
            break
        case "http":
            guard isLoopback || allowingInsecureHTTP else {
                throw invalid(
                    "is plain http on a host that is not loopback (127.0.0.0/8, ::1 or localhost); use https, or "
                        + "allow insecure HTTP explicitly")
            }
        default:
            throw invalid("is neither an https nor an http URL")
        }
        guard baseURL.host?.isEmpty == false else { throw invalid("has no host") }
        guard !hasCredentials else {
            throw invalid(
                "carries a user name or password (not shown); the write key is the only credential Segment takes")
        }
        guard baseURL.query == nil else { throw invalid("has a query (not shown); give a base URL without one") }
        guard baseURL.fragment == nil else {
            throw invalid("has a fragment (not shown); give a base URL without one")
        }
    }
}
