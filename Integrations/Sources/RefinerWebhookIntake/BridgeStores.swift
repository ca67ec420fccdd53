import Foundation
import RefinerSegment
import RefinerSegmentFileStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The bridge's durable state in `BRIDGE_STORE_DIR`: the messages accepted for delivery, and the profiles
/// the calls are built on. Both example servers open it the same way.
///
/// - The messages are a `FileMessageStore` in the directory itself: a webhook is answered 200 only once
///   its calls are written and synced there, so a crash, a `kill -9` or a power cut after the answer loses
///   nothing, and the next start sends them first.
/// - The profiles are a `FileProfileStore` in `profiles.log` beside them, so a user's traits keep
///   accumulating across restarts and memory does not grow with the number of users.
///
/// The directory is locked: a second bridge on the same directory refuses to start. It holds personal data,
/// so it is created 0700, and an existing one that another user owns or that others may enter is refused:
/// the files inside are then out of other users' reach whatever their own modes.
public struct BridgeStores: Sendable {
    /// The accepted messages, handed to the pipeline as its `store:`.
    public var messages: FileMessageStore
    /// The collected profiles, handed to the intake.
    public var profiles: FileProfileStore

    /// Why the store could not be opened, naming the directory.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, with the path.
        public var description: String
        /// The store's own error.
        public var underlying: any Error
    }

    /// Opens (or creates) the stores in ``BridgeSettings/storeDirectory``, bounded by
    /// ``BridgeSettings/storeMaximumBytes``.
    ///
    /// - Throws: ``Failure`` when the directory cannot be created or read, is not private to this user, or
    ///   another process holds it.
    public init(settings: BridgeSettings) throws(Failure) {
        let directory = URL(fileURLWithPath: settings.storeDirectory, isDirectory: true)
        try Self.checkPrivate(settings.storeDirectory)
        let bound = settings.storeMaximumBytes
        // Settled messages are deleted a segment file at a time, and the file being written counts in full:
        // small segments let a full store make room soon after Segment is back.
        let configuration = FileMessageStore.Configuration(
            sync: .beforeAcknowledging, maximumBytes: bound, segmentBytes: min(1 << 20, max(1024, bound / 16)))
        do {
            messages = try FileMessageStore(directory: directory, configuration: configuration)
        } catch {
            throw Failure(description: "BRIDGE_STORE_DIR \(settings.storeDirectory): \(error)", underlying: error)
        }
        do {
            profiles = try FileProfileStore(path: directory.appendingPathComponent("profiles.log").path)
        } catch {
            throw Failure(description: "BRIDGE_STORE_DIR \(settings.storeDirectory): \(error)", underlying: error)
        }
    }

    /// Creates the directory 0700 when it does not exist; refuses one that is not this user's alone.
    private static func checkPrivate(_ path: String) throws(Failure) {
        struct Refused: Error {}
        func refuse(_ reason: String) -> Failure {
            Failure(description: "BRIDGE_STORE_DIR \(path) \(reason)", underlying: Refused())
        }
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw refuse("cannot be created: \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard stat(path, &status) == 0 else { throw refuse("cannot be read: \(String(cString: strerror(errno)))") }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw refuse("is not a directory") }
        guard status.st_uid == geteuid() else {
            throw refuse("belongs to another user; refusing to keep personal data in it")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw refuse("can be entered by others (chmod 700 it); refusing to keep personal data in it")
        }
    }
}
