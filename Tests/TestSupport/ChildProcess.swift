#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport

/// A server process a test starts itself, so it can stop (SIGKILL: a crash, as far as clients
/// can tell) and start it again. Spawned with posix_spawn and reaped with waitpid; the signal mask
/// is cleared because worker threads block most signals and a child inherits that mask.
public final class ChildProcess: Sendable {
    public let arguments: [String]
    private let pid = Mutex<pid_t>(0)

    public struct SpawnError: Error, CustomStringConvertible {
        public let status: Int32
        public let program: String
        public var description: String { "could not start \(program): \(String(cString: strerror(status)))" }
    }

    /// Starts `arguments[0]` with the rest as its arguments.
    public init(_ arguments: [String]) throws {
        self.arguments = arguments
        try start()
    }

    /// Starts the program (again).
    public func start() throws {
        // Its output would interleave with the test report: send it to /dev/null.
        let child = try Self.spawn(arguments) { files in
            posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&files, 2, "/dev/null", O_WRONLY, 0)
        }
        pid.withLock { $0 = child }
    }

    /// Starts `arguments[0]` with the rest as its arguments and a cleared signal mask; `files`
    /// sets where its descriptors go. Returns its pid; the caller reaps it.
    public static func spawn(_ arguments: [String], files configure: (inout posix_spawn_file_actions_t) -> Void) throws(SpawnError) -> pid_t {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var files = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&files)
        defer { posix_spawn_file_actions_destroy(&files) }
        configure(&files)
        var child: pid_t = 0
        let status = posix_spawn(&child, arguments[0], &files, &attributes, &argv, environ)
        guard status == 0 else { throw SpawnError(status: status, program: arguments[0]) }
        return child
    }

    /// Kills the process (SIGKILL unless another signal is named) and waits for it.
    public func stop(signal: Int32 = SIGKILL) {
        let child = pid.withLock { pid -> pid_t in
            defer { pid = 0 }
            return pid
        }
        guard child > 0 else { return }
        kill(child, signal)
        var status: Int32 = 0
        waitpid(child, &status, 0)
    }

    deinit { stop() }
}

/// A redis-server of the test's own (no password, no persistence), so it can be killed and
/// started again on the same port.
public final class PrivateRedisServer: Sendable {
    public let port: Int
    private let process: ChildProcess

    public init() throws {
        // A free port: bind, read it, let it go.
        let listener = try Listener.bind()
        guard case .tcp(_, let port) = listener.endpoint else {
            listener.close()
            throw ChildProcess.SpawnError(status: EINVAL, program: "redis-server")
        }
        self.port = port
        listener.close()
        process = try ChildProcess([
            "/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning",
        ])
    }

    /// Starts it again.
    public func start() throws { try process.start() }
    /// Kills it (SIGKILL).
    public func stop() { process.stop() }
}
