import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Infra
import Logging
import PGWire
import Synchronization
import TestSupport
import Testing

/// The pool over a primary and its synchronous standby (scripts/pg-pair.sh, a pair of the test's
/// own), with `target_session_attrs=read-write`: the primary is killed under an insert load and
/// the standby promoted; the pool finds the new primary by itself.
@Suite("Connection pool: failover to a promoted standby (live)", .serialized, .timeLimit(.minutes(3)), .enabled(if: LiveServer.postgres.isAvailable))
struct PoolFailoverTests {
    /// What the load recorded: the ids whose INSERT returned, and the failures by kind.
    final class Ledger: Sendable {
        let acknowledged = Mutex<Set<Int64>>([])
        let failures = Mutex<[String]>([])
        let nextID = Atomic<Int64>(0)
        let running = Atomic<Bool>(true)
    }

    struct ScriptFailed: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `script` to completion and returns its standard output. Spawned and reaped here
    /// (posix_spawn, waitpid on a thread of its own) with a cleared signal mask: the servers the
    /// script starts outlive it, and Foundation's Process did not always see its end.
    static func run(_ script: String, _ arguments: [String]) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("pg-pair-\(UUID().uuidString.prefix(8)).out").path
        defer { unlink(output) }
        let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            Thread.detachNewThread {
                var argv: [UnsafeMutablePointer<CChar>?] = ([script] + arguments).map { strdup($0) } + [nil]
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
                posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&files, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                posix_spawn_file_actions_adddup2(&files, 1, 2)
                var child: pid_t = 0
                let spawned = posix_spawn(&child, script, &files, &attributes, &argv, environ)
                guard spawned == 0 else {
                    continuation.resume(throwing: ScriptFailed(description: "could not start \(script): \(String(cString: strerror(spawned)))"))
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

    @Test func aPromotedStandbyBecomesThePoolsPrimaryAndNoAcknowledgedInsertIsLost() async throws {
        let script = try LiveServer.require("INFRA_TEST_POSTGRES_PAIR")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pg-pair-\(UUID().uuidString.prefix(8))").path
        let started = try await Self.run(script, ["start", directory])
        defer { Task { _ = try? await Self.run(script, ["destroy", directory]) } }
        let ports = started.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(ports.count == 2, "pg-pair.sh printed \(started)")
        var connection = PostgresConfiguration(
            hosts: [.init("127.0.0.1", port: ports[0]), .init("127.0.0.1", port: ports[1])], user: try LiveServer.require("INFRA_TEST_POSTGRES_USER"),
            password: try LiveServer.require("INFRA_TEST_POSTGRES_PASSWORD"), database: "postgres", sslMode: .disable, connectTimeout: .seconds(2))
        connection.targetSessionAttributes = .readWrite
        connection.cancelGracePeriod = .seconds(1)
        var configuration = PoolConfiguration(minimumConnections: 2, maximumConnections: 6)
        configuration.acquireTimeout = .seconds(30)
        configuration.maximumBackoff = .milliseconds(300)
        let pool = ConnectionPool(name: "postgres", configuration: configuration, shutdownGracePeriod: .seconds(2), logger: Logger(label: "failover", factory: { _ in SwiftLogNoOpLogHandler() })) {
            [connection] _ in try await PostgresConnection.connect(connection)
        }
        defer { Task { await pool.shutdown() } }
        _ = try await pool.simpleQuery("CREATE TABLE jobs (id bigint PRIMARY KEY)")

        let ledger = Ledger()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        while ledger.running.load(ordering: .relaxed) {
                            let id = ledger.nextID.add(1, ordering: .relaxed).newValue
                            do {
                                try await pool.execute("INSERT INTO jobs (id) VALUES (\(id))")
                                _ = ledger.acknowledged.withLock { $0.insert(id) }
                            } catch let error as PostgresError {
                                ledger.failures.withLock { $0.append("\(error.kind)") }
                            } catch let error as PoolError {
                                ledger.failures.withLock { $0.append("pool: \(error.kind)") }
                            } catch {
                                ledger.failures.withLock { $0.append("untyped: \(error)") }
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(1))
        let beforeKill = ledger.acknowledged.withLock { $0.count }
        #expect(beforeKill > 50, "inserts went through before the primary was killed: \(beforeKill)")
        _ = try await Self.run(script, ["stop-primary", directory])
        let killedAt = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(300))
        _ = try await Self.run(script, ["promote", directory])
        let mark = ledger.acknowledged.withLock { $0.count }
        var recoveredAfter: Duration?
        for _ in 0..<300 {
            if ledger.acknowledged.withLock({ $0.count }) > mark + 200 {
                recoveredAfter = ContinuousClock.now - killedAt
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        ledger.running.store(false, ordering: .relaxed)
        await load.value
        #expect(recoveredAfter != nil, "the pool went on inserting on the promoted standby")
        let failures = ledger.failures.withLock { $0 }
        #expect(!failures.contains { $0.hasPrefix("untyped") }, "\(failures.filter { $0.hasPrefix("untyped") }.prefix(3))")

        // Every acknowledged insert is on the new primary (commits waited for the standby).
        let rows = try await pool.execute("SELECT id FROM jobs").rows
        var stored = Set<Int64>()
        for row in rows { stored.insert(try row.decode(Int64.self)) }
        let acknowledged = ledger.acknowledged.withLock { $0 }
        let lost = acknowledged.subtracting(stored)
        #expect(lost.isEmpty, "\(lost.count) acknowledged inserts lost, e.g. \(lost.prefix(5))")
        let onStandby = try await pool.withConnection { try await $0.simpleQuery("SELECT pg_is_in_recovery()").first?.rows.first?.decode(String.self, column: 0) }
        #expect(onStandby == "f", "the pool's connections are on the promoted server")
        print("failover: \(acknowledged.count) inserts acknowledged, \(failures.count) failed (\(Set(failures).sorted())), recovered \(recoveredAfter.map { "\($0)" } ?? "never") after the kill")
    }
}
