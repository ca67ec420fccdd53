import RefinerSegment

/// The test doubles' name for the package's one lock type, `Locked` (in the core, `package` access).
typealias LockedState<Value> = Locked<Value>
