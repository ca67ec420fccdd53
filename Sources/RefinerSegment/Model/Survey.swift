/// The survey a response belongs to.
public struct Survey: Sendable, Hashable, Codable {
    /// The survey's stable id (Refiner's form uuid, or the host's own id).
    public var id: String
    /// The survey's name, when known; sent on the optional `Completed Survey` track call.
    public var name: String?

    /// Creates a survey.
    public init(id: String, name: String? = nil) {
        self.id = id
        self.name = name
    }
}
