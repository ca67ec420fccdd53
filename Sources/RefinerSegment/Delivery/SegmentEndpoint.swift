#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where batches go: a Segment region or any Segment-compatible base URL (a proxy, a collector).
///
/// Requests go to `{baseURL}/v1/batch`. Plain `http://` is accepted only for loopback hosts
/// (`localhost`, `127.x.x.x`, `::1`) unless ``SegmentPipeline/Configuration/allowsInsecureHTTP`` is set,
/// because the write key travels in every request.
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

    /// Whether the host is a loopback address, where plain HTTP does not leave the machine.
    public var isLoopback: Bool {
        guard var host = baseURL.host?.lowercased() else { return false }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The base URL as text.
    public var description: String { baseURL.absoluteString }

    /// Checks the scheme: `https`, or `http` for loopback hosts or when insecure HTTP is allowed.
    func validate(allowingInsecureHTTP: Bool) throws(SegmentDeliveryError) {
        switch baseURL.scheme?.lowercased() {
        case "https":
            guard baseURL.host?.isEmpty == false else {
                throw SegmentDeliveryError(code: .invalidConfiguration, detail: "the endpoint \(self) has no host")
            }
        case "http":
            guard isLoopback || allowingInsecureHTTP else {
                throw SegmentDeliveryError(
                    code: .invalidConfiguration,
                    detail: "the endpoint \(self) is plain http on a host that is not loopback; use https, or allow "
                        + "insecure HTTP explicitly"
                )
            }
        default:
            throw SegmentDeliveryError(
                code: .invalidConfiguration, detail: "the endpoint \(self) is neither an https nor an http URL")
        }
    }
}
