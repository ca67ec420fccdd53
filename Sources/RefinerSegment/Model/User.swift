#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The person who completed a survey.
///
/// Segment needs a user id or an anonymous id on every call; a user with neither is rejected before
/// anything is built. The JSON form is `{"id": ..., "anonymousId": ..., "email": ...}`.
public struct User: Sendable, Hashable, Codable {
    /// The host product's id for the user (`userId` on Segment calls), when known.
    public var id: String?
    /// An anonymous id (`anonymousId` on Segment calls), used when there is no user id.
    public var anonymousID: String?
    /// The user's email; when known, `identify` carries it as the `email` trait (`refiner_email`).
    public var email: String?

    /// Creates a user. Give at least one of `id` and `anonymousID`.
    public init(id: String? = nil, anonymousID: String? = nil, email: String? = nil) {
        self.id = id
        self.anonymousID = anonymousID
        self.email = email
    }

    enum CodingKeys: String, CodingKey {
        case id
        case anonymousID = "anonymousId"
        case email
    }

    /// The user id, when it is present and not empty.
    var nonEmptyID: String? { id.flatMap { $0.isEmpty ? nil : $0 } }
    /// The anonymous id, when it is present and not empty.
    var nonEmptyAnonymousID: String? { anonymousID.flatMap { $0.isEmpty ? nil : $0 } }
}
