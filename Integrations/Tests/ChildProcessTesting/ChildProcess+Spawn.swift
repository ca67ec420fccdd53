import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ChildProcess {
    /// Opens `path` close-on-exec: only a child's `dup2` copies of it reach a child.
    static func open(_ path: String, _ flags: Int32) throws -> Int32 {
        let fd = Glue.open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SpawnError(description: "cannot open \(path): \(Self.errnoText())") }
        return fd
    }

    /// A pipe whose two ends are close-on-exec from the start (`pipe2`), so that a child another thread spawns
    /// meanwhile cannot inherit the write end and hold our reader's end of file back.
    static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let made = fds.withUnsafeMutableBufferPointer { Glue.pipeCloseOnExec($0.baseAddress!) }
        guard made == 0 else { throw SpawnError(description: "cannot make a pipe: \(Self.errnoText())") }
        return (fds[0], fds[1])
    }

    /// `posix_spawn`s `path`; `streams` become the child's descriptors 0, 1 and 2, and it gets no other.
    static func spawn(
        _ path: String, arguments: [String], environment: [String: String]?, streams: [Int32]
    ) throws -> pid_t {
        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        for (target, fd) in streams.enumerated() {
            // dup2 clears close-on-exec on the copy; the original stays close-on-exec.
            posix_spawn_file_actions_adddup2(&actions, fd, Int32(target))
        }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        #if canImport(Darwin)
        flags |= Int32(POSIX_SPAWN_CLOEXEC_DEFAULT)
        #else
        if let closeFrom = Glue.addCloseFrom {
            _ = closeFrom(&actions, 3)
        }
        #endif
        // The child starts as a fresh process would: no signal blocked, none ignored (this process may ignore
        // SIGPIPE or SIGTERM for its own signal handling; dispositions set to ignore survive exec).
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") }
        let envp = variables + [nil]
        defer { for variable in variables { free(variable) } }

        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// The C library's functions by another name where `ChildProcess`'s own names hide them, and the glibc ones
/// Swift does not import (declared only with `_GNU_SOURCE`/`__USE_MISC`), looked up at run time.
enum Glue {
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
        #if canImport(Glibc)
        Glibc.open(path, flags, mode)
        #elseif canImport(Musl)
        Musl.open(path, flags, mode)
        #else
        Darwin.open(path, flags, mode)
        #endif
    }

    /// `pipe2(fds, O_CLOEXEC)` where it exists; elsewhere `pipe` then `FD_CLOEXEC` (a window in which a
    /// concurrent spawn could inherit the pipe: Darwin's children get `POSIX_SPAWN_CLOEXEC_DEFAULT` instead).
    static func pipeCloseOnExec(_ fds: UnsafeMutablePointer<Int32>) -> Int32 {
        #if os(Linux)
        if let pipe2 = Self.pipe2 { return pipe2(fds, O_CLOEXEC) }
        #endif
        guard pipe(fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }

    #if os(Linux)
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32

    private static let pipe2: Pipe2? = symbol("pipe2")
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34 and later).
    static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? =
        symbol("posix_spawn_file_actions_addclosefrom_np")

    private static func symbol<Function>(_ name: String) -> Function? {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else { return nil }
        return unsafeBitCast(address, to: Function.self)
    }
    #endif
}
