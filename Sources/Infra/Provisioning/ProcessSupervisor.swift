import Foundation
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a pid file of the native stack records: the process, when it started (so a reused pid is
/// not mistaken for it), and the digest of the configuration it was started with.
public struct PidRecord: Sendable, Equatable {
    public var pid: Int32
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22).
    public var startTicks: UInt64
    public var configurationDigest: String
    /// The program's path, so that `down` can stop a process the current plan no longer names.
    public var executable: String

    public init(pid: Int32, startTicks: UInt64, configurationDigest: String, executable: String) {
        self.pid = pid
        self.startTicks = startTicks
        self.configurationDigest = configurationDigest
        self.executable = executable
    }

    /// "pid start digest", then the executable on the next line.
    public var text: String { "\(pid) \(startTicks) \(configurationDigest)\n\(executable)\n" }

    /// Reads a pid file's text; nil when it is not one of ours.
    public init?(text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 2 else { return nil }
        let fields = lines[0].split(separator: " ")
        guard fields.count == 3, let pid = Int32(fields[0]), pid > 1, let ticks = UInt64(fields[1]), !lines[1].isEmpty else { return nil }
        self.init(pid: pid, startTicks: ticks, configurationDigest: String(fields[2]), executable: String(lines[1]))
    }

    /// Reads a pid file; nil when it is missing or not one of ours.
    public init?(file: String) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        self.init(text: text)
    }
}

/// Starts server processes detached (their own session, output to their log), keeps their pid
/// files, tells whether they still run, and stops them. Programs that run to completion
/// (initdb, apt-get) go through ``run(_:_:environment:asPostgres:)``.
public enum ProcessSupervisor {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// The uid and gid of the `postgres` system user, when it exists.
    public static var postgresUser: (uid: uid_t, gid: gid_t)? {
        guard let entry = getpwnam("postgres") else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    /// Where util-linux's `setpriv` is (Debian's util-linux is an essential package).
    static let setprivPath = "/usr/bin/setpriv"

    /// The platform options of a child, and the command to put before its program: for a
    /// program that must run as `postgres` while this one runs as root, `setpriv` drops to that
    /// user. Changing user in the forked child itself (setgroups, setgid, setuid there) can hang
    /// the child for good: glibc's wrappers synchronise with the parent's other threads, whose
    /// state the fork copied mid-operation.
    static func options(asPostgres: Bool, newSession: Bool) throws(Failure) -> (platform: PlatformOptions, prefix: [String]) {
        var options = PlatformOptions()
        options.createSession = newSession
        guard asPostgres, getuid() == 0 else { return (options, []) }
        guard let user = postgresUser else {
            throw Failure(message: "PostgreSQL cannot run as root and there is no postgres system user (the postgresql package creates it)")
        }
        guard access(setprivPath, X_OK) == 0 else {
            throw Failure(message: "running PostgreSQL as the postgres user needs \(setprivPath) (the util-linux package)")
        }
        return (options, [setprivPath, "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--"])
    }

    static func inheritedEnvironment(adding variables: [String: String]) -> Environment {
        var updates: [Environment.Key: String?] = [:]
        for (name, value) in variables {
            if let key = Environment.Key(rawValue: name) { updates[key] = value }
        }
        return .inherit.updating(updates)
    }

    /// Runs a program to completion; returns its exit status and its output (standard output and
    /// error, the last 64 KiB).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], asPostgres: Bool = false,
        workingDirectory: String? = nil
    ) async throws(Failure) -> (status: Int32, output: String) {
        let (platform, prefix) = try options(asPostgres: asPostgres, newSession: false)
        let command = prefix + [executable] + arguments
        do {
            let result = try await Subprocess.run(
                .path(FilePath(command[0])), arguments: Arguments(Array(command.dropFirst())),
                environment: inheritedEnvironment(adding: environment),
                workingDirectory: workingDirectory.map { FilePath($0) }, platformOptions: platform,
                output: .string(limit: 4 << 20), error: .combinedWithOutput)
            let status: Int32 =
                switch result.terminationStatus {
                case .exited(let code): code
                case .signaled(let signal): 128 + signal
                }
            let output = result.standardOutput
            return (status, String(output.suffix(65536)))
        } catch {
            throw Failure(message: "could not run \(executable): \(error)")
        }
    }

    /// Starts `process` detached: a new session, standard input from /dev/null, output appended
    /// to its log; returns the pid once the process exists. Its pid file is written here.
    public static func start(_ process: NativeProcess, workingDirectory: String) async throws(Failure) -> PidRecord {
        // A shell puts the server in the background and prints its pid: the server outlives
        // this program, and its pid is known without polling for a pid file of its own.
        let script = "\"$@\" </dev/null >>\"$INFRA_UP_LOG\" 2>&1 & echo $!"
        let (platform, prefix) = try options(asPostgres: process.runsAsPostgres, newSession: true)
        var environment = process.environment
        environment["INFRA_UP_LOG"] = process.log
        let pid: Int32
        do {
            let result = try await Subprocess.run(
                .path("/bin/sh"), arguments: Arguments(["-c", script, "sh"] + prefix + [process.executable] + process.arguments),
                environment: inheritedEnvironment(adding: environment),
                workingDirectory: FilePath(workingDirectory), platformOptions: platform,
                output: .string(limit: 256), error: .string(limit: 4096))
            guard result.terminationStatus.isSuccess,
                let parsed = Int32(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines))
            else {
                throw Failure(message: "could not start \(process.name): \(result.standardError)")
            }
            pid = parsed
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(message: "could not start \(process.name) (\(process.executable)): \(error)")
        }
        let record = PidRecord(
            pid: pid, startTicks: startTicks(of: pid) ?? 0, configurationDigest: process.configurationDigest, executable: process.executable)
        do {
            try record.text.write(toFile: process.pidFile, atomically: true, encoding: .utf8)
        } catch {
            throw Failure(message: "could not write \(process.pidFile): \(error)")
        }
        return record
    }

    /// The pid file's record when the process it names still runs (same pid, same start time,
    /// the expected program, not a zombie); nil otherwise.
    public static func running(_ process: NativeProcess) -> PidRecord? {
        guard let record = PidRecord(file: process.pidFile) else { return nil }
        return isAlive(record) ? record : nil
    }

    /// Whether the recorded process still runs: the same pid with the same start time (a reused
    /// pid has another), not a zombie. Without a recorded start time, the program's name decides.
    public static func isAlive(_ record: PidRecord) -> Bool {
        guard let stat = statFields(of: record.pid), stat.state != "Z", stat.state != "X" else { return false }
        if record.startTicks != 0 { return stat.startTicks == record.startTicks }
        guard let command = FileManager.default.contents(atPath: "/proc/\(record.pid)/cmdline") else { return false }
        // Servers may rewrite their title (redis-server shows "redis-server 127.0.0.1:6379"):
        // compare the program name before any space.
        let first = command.split(separator: 0).first.map { String(decoding: $0.prefix { $0 != 32 }, as: UTF8.self) } ?? ""
        return (first as NSString).lastPathComponent == (record.executable as NSString).lastPathComponent
    }

    /// Stops the recorded process: `signal` (SIGTERM, or SIGINT for PostgreSQL's fast shutdown),
    /// then SIGKILL after `grace`. Returns whether it had to be killed.
    @discardableResult
    public static func stop(_ record: PidRecord, signal: Int32 = SIGTERM, grace: Duration = .seconds(30)) async -> Bool {
        guard isAlive(record) else { return false }
        kill(record.pid, signal)
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while clock.now < deadline {
            if !isAlive(record) { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(record.pid, SIGKILL)
        while isAlive(record) { try? await Task.sleep(for: .milliseconds(20)) }
        return true
    }

    /// State letter and start time from /proc/PID/stat.
    static func statFields(of pid: Int32) -> (state: Character, startTicks: UInt64)? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        // The command (field 2) is in parentheses and may hold spaces: read after the last ")".
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 (start time) is fields[19].
        guard fields.count > 19, let state = fields[0].first, let ticks = UInt64(fields[19]) else { return nil }
        return (state, ticks)
    }

    static func startTicks(of pid: Int32) -> UInt64? { statFields(of: pid)?.startTicks }

    /// The last `count` lines of a log file, for the error that says why a server did not start.
    public static func tail(_ path: String, lines count: Int = 15) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > 65536 ? size - 65536 : 0
        try? handle.seek(toOffset: start)
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return Array(text.split(separator: "\n", omittingEmptySubsequences: true).suffix(count).map(String.init))
    }
}
