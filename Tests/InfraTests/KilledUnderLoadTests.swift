import Foundation
import Infra
import JetStream
import Logging
import NATSProto
import PGWire
import RESP
import Synchronization
import TestSupport
import Testing
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Each server killed with SIGKILL and started again while 50 tasks write: PostgreSQL
/// (transactions through the pool, synchronous commit), Redis (SETs, AOF with fsync always) and
/// nats-server (JetStream publishes with their acks, file store synced on every write). Nothing
/// whose write was acknowledged may be missing afterwards; writes that failed on the client but
/// landed on the server are counted, not errors. The work goes on without a manual step.
@Suite("Servers killed under load", .serialized, .timeLimit(.minutes(3)))
struct KilledUnderLoadTests {
    /// What the writers saw: the ids the server acknowledged, the ids whose write failed, the
    /// errors by kind, and when the first acknowledgement after the restart came.
    final class Ledger: Sendable {
        let running = Atomic<Bool>(true)
        let restartedAt = Mutex<ContinuousClock.Instant?>(nil)
        let state = Mutex<(acked: Set<Int64>, failed: Set<Int64>, errors: [String: Int], recovered: Duration?)>(([], [], [:], nil))

        func acked(_ id: Int64) {
            let restart = restartedAt.withLock { $0 }
            state.withLock { state in
                state.acked.insert(id)
                if let restart, state.recovered == nil { state.recovered = ContinuousClock.now - restart }
            }
        }

        func failed(_ id: Int64, _ error: any Error) {
            let kind: String =
                switch error {
                case let error as PostgresError: "postgres \(error.kind)"
                case let error as RedisError: "redis \(error.kind)"
                case let error as JetStreamError: "jetstream \(error.kind)"
                case let error as PoolError: "pool \(error.kind)"
                default: "untyped: \(error)"
                }
            state.withLock { state in
                state.failed.insert(id)
                state.errors[kind, default: 0] += 1
            }
        }

        /// 50 tasks writing `write(id)` with ids of their own until stopped.
        func run(tasks: Int = 50, _ write: @escaping @Sendable (Int64) async throws -> Void) -> Task<Void, Never> {
            Task {
                await withTaskGroup(of: Void.self) { group in
                    for task in 0..<tasks {
                        group.addTask {
                            var next = Int64(task) * 10_000_000
                            while self.running.load(ordering: .relaxed) {
                                next += 1
                                do {
                                    try await write(next)
                                    self.acked(next)
                                } catch {
                                    self.failed(next, error)
                                    try? await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                    }
                }
            }
        }

        /// Load for a second, SIGKILL, restart after `down`, load until `after` more acks.
        func killAndRestart(
            _ load: Task<Void, Never>, kill: () async throws -> Void, start: () async throws -> Void, down: Duration = .milliseconds(300),
            after more: Int = 2000
        ) async throws {
            try await Task.sleep(for: .seconds(1))
            try await kill()
            try await Task.sleep(for: down)
            restartedAt.withLock { $0 = .now }
            try await start()
            let mark = state.withLock { $0.acked.count }
            let deadline = ContinuousClock.now + .seconds(30)
            while state.withLock({ $0.acked.count }) < mark + more && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            running.store(false, ordering: .relaxed)
            await load.value
        }

        /// Compares with what the server has; records the figures.
        func check(stored: Set<Int64>, _ name: String) {
            let (acked, failed, errors, recovered) = state.withLock { ($0.acked, $0.failed, $0.errors, $0.recovered) }
            let lost = acked.subtracting(stored)
            let landed = failed.intersection(stored)
            #expect(lost.isEmpty, "\(name): \(lost.count) acknowledged writes lost, e.g. \(lost.prefix(5).sorted())")
            #expect(recovered != nil, "\(name): no write was acknowledged after the restart")
            #expect(!errors.keys.contains { $0.hasPrefix("untyped") }, "\(name): untyped errors \(errors)")
            #expect(stored.subtracting(acked).subtracting(failed).isEmpty, "\(name): the server has writes nobody made")
            print("killed under load, \(name): \(acked.count) acknowledged, 0 of them lost (\(lost.count)); \(failed.count) failed on the client, \(landed.count) of those landed; errors \(errors.sorted { $0.key < $1.key }); first acknowledgement \(recovered.map { "\($0)" } ?? "never") after the restart")
        }
    }

    @Test(.enabled(if: LiveServer.postgres.isAvailable)) func postgres() async throws {
        let crash = try LiveServer.require("INFRA_TEST_POSTGRES_CRASH")
        let start = try LiveServer.require("INFRA_TEST_POSTGRES_START")
        let table = "killed_" + UUID().uuidString.prefix(8).lowercased()
        let pool = try LiveServer.postgresPool(minimum: 10, maximum: 50) {
            $0.acquireTimeout = .seconds(20)
            $0.maximumBackoff = .milliseconds(500)
        }
        defer { Task { await pool.shutdown() } }
        _ = try await pool.withConnection { try await $0.simpleQuery("CREATE TABLE \(table) (id bigint PRIMARY KEY)") }
        let ledger = Ledger()
        let load = ledger.run { id in
            // Synchronous commit for these transactions: the test server runs without it.
            _ = try await pool.withConnection {
                try await $0.simpleQuery("BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO \(table) VALUES (\(id)); COMMIT")
            }
        }
        try await ledger.killAndRestart(load, kill: { _ = try await runCommand(crash, []) }, start: { _ = try await runCommand(start, []) })
        var stored: Set<Int64> = []
        try await pool.withConnection { connection in
            for row in try await connection.query(PostgresQuery(unsafeSQL: "SELECT id FROM \(table)")).collect() { stored.insert(try row.decode(Int64.self, column: 0)) }
            _ = try await connection.simpleQuery("DROP TABLE \(table)")
        }
        ledger.check(stored: stored, "PostgreSQL")
    }

    @Test(.enabled(if: LiveServer.redis.isAvailable)) func redis() async throws {
        let directory = try LiveServer.scratchDirectory("redis-aof")
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try Listener.bind()
        let port = try #require(listener.endpoint.port)
        listener.close()
        let server = try ChildProcess([
            "/usr/bin/redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--dir", directory.path, "--loglevel", "warning",
        ])
        defer { server.stop() }
        var configuration = RedisConfiguration(host: "127.0.0.1", port: port)
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        let client = RedisClient(configuration: configuration)
        defer { client.close() }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? await client.send(["PING"])) != nil
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(ready)
        let ledger = Ledger()
        let load = ledger.run { id in
            try await client.send(["SET", .string("k:\(id)"), "1"])
        }
        try await ledger.killAndRestart(load, kill: { server.stop() }, start: { try server.start() })
        var stored: Set<Int64> = []
        var cursor = "0"
        repeat {
            guard case .array(let reply) = try await client.send(["SCAN", .string(cursor), "MATCH", "k:*", "COUNT", "10000"]), reply.count == 2,
                case .array(let keys) = reply[1]
            else { break }
            cursor = reply[0].string ?? "0"
            for key in keys { if let id = key.string.flatMap({ Int64($0.dropFirst(2)) }) { stored.insert(id) } }
        } while cursor != "0"
        ledger.check(stored: stored, "Redis")
    }

    @Test(.enabled(if: LiveServer.nats.isAvailable)) func natsJetStream() async throws {
        let binary = try LiveServer.require("INFRA_TEST_NATS_SERVER_BINARY")
        let directory = try LiveServer.scratchDirectory("nats-kill")
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try Listener.bind()
        let port = try #require(listener.endpoint.port)
        listener.close()
        let config = directory.appendingPathComponent("nats.conf")
        try """
            listen: 127.0.0.1:\(port)
            jetstream {
                store_dir: "\(directory.path)"
                sync_interval: always
            }
            """.write(to: config, atomically: true, encoding: .utf8)
        let server = try ChildProcess([binary, "-c", config.path])
        defer { server.stop() }
        var options = NATSConfiguration(url: "nats://127.0.0.1:\(port)")
        options.reconnectWait = .milliseconds(100)
        options.maximumReconnectAttempts = -1
        var connected: NATSClient?
        for _ in 0..<100 where connected == nil {
            connected = try? await NATSClient.connect(options)
            if connected == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let client = try #require(connected)
        defer { Task { await client.close() } }
        let js = JetStreamContext(client: client, timeout: .seconds(5))
        _ = try await js.createStream(StreamConfig(name: "KILLED", subjects: ["killed.>"]))
        let ledger = Ledger()
        let load = ledger.run { id in
            _ = try await js.publish(Array("\(id)".utf8), to: "killed.work", options: PublishOptions(messageID: "\(id)"))
        }
        try await ledger.killAndRestart(load, kill: { server.stop() }, start: { try server.start() }, after: 1000)
        // Everything the stream holds, read back through a consumer without acks.
        _ = try await js.createConsumer(ConsumerConfig(durableName: "reader", ackPolicy: .none), stream: "KILLED")
        var stored: Set<Int64> = []
        while true {
            let batch = try await js.fetch(consumer: "reader", stream: "KILLED", batch: 5000, noWait: true)
            if batch.isEmpty { break }
            for message in batch { if let id = Int64(String(decoding: message.payload.readableBytesView, as: UTF8.self)) { stored.insert(id) } }
        }
        ledger.check(stored: stored, "nats-server JetStream")
    }
}
