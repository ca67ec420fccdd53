import RefinerSegment
import RefinerSegmentFileStore

/// Where `render` and `send` keep the collected profiles: in memory for one run, or with `--profiles FILE` in
/// a ``FileProfileStore`` kept across runs (a backfill split over several runs builds what one run would, and
/// memory does not grow with the number of distinct users).
enum CollectedProfiles {
    case memory(InMemoryProfileStore)
    case file(FileProfileStore)

    /// The store `--profiles` names, or one in memory; a torn tail the file store cut off on open, and an index it
    /// found damaged and rebuilt, are reported.
    static func open(_ path: String?, io: ToolIO) throws -> CollectedProfiles {
        guard let path else { return .memory(InMemoryProfileStore()) }
        let store = try FileProfileStore(path: path)
        if store.truncatedBytes > 0 {
            io.writeError("refiner-segment: \(store.path): cut off a torn tail of \(store.truncatedBytes) bytes\n")
        }
        if store.indexRebuilds > 0 {
            io.writeError("refiner-segment: \(store.path): the index was damaged; rebuilt it from the log\n")
        }
        return .file(store)
    }

    /// Applies the response to its user's and account's profiles and builds its calls on them.
    mutating func process(_ response: SurveyResponse, with builder: SegmentCallBuilder) throws -> [SegmentMessage] {
        switch self {
        case .memory(var store):
            self = .memory(InMemoryProfileStore())  // no second copy while it changes
            defer { self = .memory(store) }
            return try store.process(response, with: builder)
        case .file(let store):
            let changes = try builder.changes(for: response)
            return try builder.makeMessages(for: response, profile: store.apply(changes))
        }
    }

    /// Releases the file store's lock; nothing to do in memory.
    func close() {
        if case .file(let store) = self { store.close() }
    }
}
