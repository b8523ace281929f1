import Foundation
import Infra
import Logging
import PGWire
import RESP
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

    @Test func aPromotedStandbyBecomesThePoolsPrimaryAndNoAcknowledgedInsertIsLost() async throws {
        let script = try LiveServer.require("INFRA_TEST_POSTGRES_PAIR")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pg-pair-\(UUID().uuidString.prefix(8))").path
        // The pair is destroyed when the test ends, pass or fail (its servers are daemons).
        try await withCleanup {
            let started = try await runScript(script, ["start", directory])
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
            _ = try await runScript(script, ["stop-primary", directory])
            let killedAt = ContinuousClock.now
            try await Task.sleep(for: .milliseconds(300))
            _ = try await runScript(script, ["promote", directory])
            let mark = ledger.acknowledged.withLock { $0.count }
            let recoveredAfter = try await elapsedUntil(since: killedAt, polls: 300) { ledger.acknowledged.withLock { $0.count } > mark + 200 }
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
        } cleanup: {
            _ = try? await runScript(script, ["destroy", directory])
        }
    }
}

/// The Redis pool over a Sentinel deployment of the test's own (scripts/redis-sentinel-set.sh):
/// the master is killed under load and the pool's new connections find the promoted replica.
@Suite("Connection pool: Redis Sentinel failover (live)", .serialized, .timeLimit(.minutes(3)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisPoolSentinelTests {
    @Test func thePoolFollowsTheSentinelsToThePromotedReplica() async throws {
        try await RedisSentinelDeployment.with { deployment in
            var connection = try RedisConfiguration(url: deployment.url)
            connection.connectTimeout = .seconds(2)
            connection.commandTimeout = .seconds(2)
            var configuration = PoolConfiguration(minimumConnections: 2, maximumConnections: 6)
            configuration.acquireTimeout = .seconds(30)
            configuration.maximumBackoff = .milliseconds(300)
            let pool = ConnectionPool(name: "redis", configuration: configuration, logger: Logger(label: "sentinel", factory: { _ in SwiftLogNoOpLogHandler() })) {
                [connection] _ in try await RedisConnection.connect(connection)
            }
            defer { Task { await pool.shutdown() } }
            let (counters, load) = LoadCounters.start(tasks: 8) {
                _ = try await pool.withConnection { try await $0.send(["INCR", "pool:counter"]) }
            }
            try await Task.sleep(for: .seconds(1))
            try await deployment.killMaster()
            let okAtKill = counters.ok
            let (ok, failed) = try await counters.finish(after: okAtKill, more: 500, load)
            #expect(ok > okAtKill + 500, "work goes on after the failover: \(okAtKill) before, \(ok) in all")
            #expect(!failed.contains { $0.hasPrefix("untyped") }, "\(failed.filter { $0.hasPrefix("untyped") }.prefix(3))")
            let port = try await pool.withConnection { try await $0.send(["CONFIG", "GET", "port"]) }
            var reached: String?
            switch port.withoutAttributes {
            case .map(let pairs): reached = pairs.first?.value.string
            case .array(let values): reached = values.last?.string
            default: break
            }
            #expect(reached == String(deployment.replica), "the pool's connections are on the promoted replica")
        }
    }
}
