import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished command left: its exit status and standard output.
public struct CommandOutput: Sendable {
    public let status: Int32
    public let standardOutput: Data

    public var text: String { String(decoding: standardOutput, as: UTF8.self) }
}

public struct CommandFailed: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public var description: String { "`\(command)` exited with status \(status)" }

    public init(command: String, status: Int32) {
        self.command = command
        self.status = status
    }
}

/// Runs `executable` to completion off the cooperative pool and returns its output: waiting for a
/// process on a thread of Swift's pool (as wide as the processors) would stall every other test
/// in the process until it ends. A serial queue of its own targets Dispatch's overcommitting pool,
/// which adds a thread when one blocks (a concurrent queue, like `DispatchQueue.global()`, would
/// not). Standard
/// error is discarded; a non-zero exit throws when `check` is set.
public func runCommand(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
    check: Bool = true
) async throws -> CommandOutput {
    let output = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CommandOutput, any Error>) in
        DispatchQueue(label: "test-support.command").async {
            continuation.resume(with: Result {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                if let environment { process.environment = environment }
                if let directory { process.currentDirectoryURL = directory }
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = FileHandle.nullDevice
                try process.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return CommandOutput(status: process.terminationStatus, standardOutput: data)
            })
        }
    }
    if check && output.status != 0 {
        throw CommandFailed(command: ([executable] + arguments).joined(separator: " "), status: output.status)
    }
    return output
}

/// Whether this process runs under AddressSanitizer (`make sanitize`), found by its runtime's entry
/// point among the program's symbols.
public let isAddressSanitized: Bool = {
    guard let program = dlopen(nil, RTLD_NOW) else { return false }
    defer { dlclose(program) }
    return dlsym(program, "__asan_init") != nil
}()

/// What AddressSanitizer adds to resident memory (its 16 MB quarantine of freed blocks, as
/// `make sanitize` sets it, and the redzones around every allocation); the tests that bound memory
/// allow it on top of their bound. Zero in an ordinary build.
public let sanitizerMemorySlack = isAddressSanitized ? 32 << 20 : 0

/// The process's resident memory now, in bytes (from /proc/self/statm); 0 where it cannot be read.
public func residentMemory() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Samples the resident memory every few milliseconds while `work` runs and returns its result with
/// the highest growth seen over the memory before it started.
public func peakMemoryGrowth<Result: Sendable>(during work: () async throws -> Result) async rethrows -> (result: Result, growth: Int) {
    let baseline = residentMemory()
    let sampler = Task.detached {
        var peak = baseline
        while !Task.isCancelled {
            peak = max(peak, residentMemory())
            try? await Task.sleep(for: .milliseconds(5))
        }
        return max(peak, residentMemory())
    }
    do {
        let result = try await work()
        sampler.cancel()
        return (result, await sampler.value - baseline)
    } catch {
        sampler.cancel()
        throw error
    }
}

/// Runs `body`, then `cleanup` whether it returned or threw, awaiting both. For what a test
/// starts outside its process (servers that daemonize): a cleanup `Task` left in a `defer` may
/// never run if the test process exits first, and the servers outlive the run.
public func withCleanup<Result>(_ body: () async throws -> Result, cleanup: () async -> Void) async throws -> Result {
    do {
        let result = try await body()
        await cleanup()
        return result
    } catch {
        await cleanup()
        throw error
    }
}

/// How long after `start` `condition` first held, polling every 50 ms for `polls` polls; nil if it
/// never did (a failover test's time to recover).
public func elapsedUntil(since start: ContinuousClock.Instant, polls: Int, _ condition: () async throws -> Bool) async throws -> Duration? {
    for _ in 0..<polls {
        if try await condition() { return ContinuousClock.now - start }
        try await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

/// A script that ended with a non-zero status, with what it printed.
public struct ScriptFailed: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }
}

/// Runs `script` to completion and returns what it printed (standard output and error). For
/// scripts that start servers which outlive them: spawned and reaped here (posix_spawn, waitpid
/// on a thread of its own) with a cleared signal mask, where Foundation's Process once never saw
/// such a script end.
public func runScript(_ script: String, _ arguments: [String]) async throws -> String {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("script-\(UUID().uuidString.prefix(8)).out").path
    defer { unlink(output) }
    let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
        Thread.detachNewThread {
            let child: pid_t
            do {
                child = try ChildProcess.spawn([script] + arguments) { files in
                    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0)
                    posix_spawn_file_actions_addopen(&files, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                    posix_spawn_file_actions_adddup2(&files, 1, 2)
                }
            } catch {
                continuation.resume(throwing: ScriptFailed(description: "\(error)"))
                return
            }
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0, errno == EINTR {}
            continuation.resume(returning: status)
        }
    }
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    guard status == 0 else { throw ScriptFailed(description: "\(script) \(arguments.joined(separator: " ")) failed (\(status)): \(text)") }
    return text
}

/// A blocking TCP socket listening on 127.0.0.1 at a port the kernel picks, for the servers that
/// tests write against the C API.
public func listenOnLoopback() throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            Glibc.bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound, listen(descriptor, 64) == 0 else {
        Glibc.close(descriptor)
        throw CommandFailed(command: "bind 127.0.0.1:0", status: errno)
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// Blocks SIGPIPE on the calling thread, for a blocking server thread whose peer may go away.
public func blockSIGPIPEOnThisThread() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}
