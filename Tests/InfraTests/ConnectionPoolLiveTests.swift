import Foundation
import Infra
import Logging
import PGWire
import RESP
import ServiceLifecycle
import Settings
import Synchronization
import TestSupport
import Testing
import Transport

extension LiveServer {
    static func poolPostgresConfiguration() throws -> PostgresConfiguration {
        var configuration = PostgresConfiguration(
            hosts: [.init(try require("INFRA_TEST_POSTGRES_HOST"), port: Int(try require("INFRA_TEST_POSTGRES_PORT")) ?? 0)],
            user: try require("INFRA_TEST_POSTGRES_USER"), password: try require("INFRA_TEST_POSTGRES_PASSWORD"),
            database: try require("INFRA_TEST_POSTGRES_DATABASE"), sslMode: .disable)
        configuration.applicationName = "pool-tests"
        configuration.cancelGracePeriod = .seconds(2)
        return configuration
    }

    static func postgresPool(minimum: Int = 1, maximum: Int = 10, configure: (inout PoolConfiguration) -> Void = { _ in })
        throws -> ConnectionPool<PostgresConnection>
    {
        let connection = try poolPostgresConfiguration()
        var configuration = PoolConfiguration(minimumConnections: minimum, maximumConnections: maximum)
        configure(&configuration)
        return ConnectionPool(name: "postgres", configuration: configuration, shutdownGracePeriod: .seconds(2), logger: Logger(label: "pool-tests")) {
            _ in try await PostgresConnection.connect(connection)
        }
    }

    /// The inodes of this process's TCP sockets connected to `port` (its descriptors, read with
    /// readlink, matched with the kernel's connection table).
    static func socketsConnected(toPort port: Int) -> Set<Substring> {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        var inodes = Set<Substring>()
        for descriptor in descriptors {
            var buffer = [CChar](repeating: 0, count: 256)
            let length = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
            guard length > 0 else { continue }
            let target = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:[") else { continue }
            inodes.insert(target.dropFirst(8).dropLast())
        }
        // Read to the end: a single read of a procfs file stops at a page.
        guard let handle = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return [] }
        defer { try? handle.close() }
        let table = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        let remote = String(format: ":%04X", port)
        var found = Set<Substring>()
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            if fields.count > 9, fields[2].hasSuffix(remote), inodes.contains(fields[9]) { found.insert(fields[9]) }
        }
        return found
    }

    /// Sockets to `port` opened since `before` (other tests' sockets closing meanwhile do not count).
    static func newSockets(toPort port: Int, since before: Set<Substring>) -> Int {
        socketsConnected(toPort: port).subtracting(before).count
    }
}

/// Waits until `condition` holds, up to `limit`.
func eventually(within limit: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
}

@Suite("Connection pool (live PostgreSQL)", .serialized, .timeLimit(.minutes(2)), .enabled(if: LiveServer.postgres.isAvailable))
struct PostgresPoolLiveTests {
    @Test func twoHundredTasksOverTenConnectionsForTenSecondsWithNoErrorOrLeak() async throws {
        let port = Int(try LiveServer.require("INFRA_TEST_POSTGRES_PORT")) ?? 0
        let socketsBefore = LiveServer.socketsConnected(toPort: port)
        let pool = try LiveServer.postgresPool(minimum: 2, maximum: 10) { $0.idleTimeout = .milliseconds(500) }
        let stop = ContinuousClock.now + .seconds(10)
        let (queries, errors) = await withTaskGroup(of: (Int, [String]).self) { group in
            for task in 0..<200 {
                group.addTask {
                    var done = 0
                    var errors: [String] = []
                    while ContinuousClock.now < stop {
                        do {
                            let value = try await pool.withConnection { connection in
                                try await connection.execute("SELECT \(task)::int4 AS n").rows.first?.decode(Int32.self, column: 0)
                            }
                            if value != Int32(task) { errors.append("task \(task) read \(String(describing: value))") }
                            done += 1
                        } catch {
                            errors.append("\(error)")
                        }
                    }
                    return (done, errors)
                }
            }
            var total = 0
            var all: [String] = []
            for await (done, errors) in group {
                total += done
                all += errors
            }
            return (total, all)
        }
        #expect(errors.isEmpty, "\(errors.count) errors, first: \(errors.first ?? "")")
        #expect(queries > 1000, "\(queries) queries in 10 s")
        #expect(pool.statistics.inUse == 0 && pool.statistics.waiting == 0)
        #expect(try await eventually { pool.statistics.open == 2 }, "back to the minimum: \(pool.statistics)")
        #expect(
            try await eventually { LiveServer.newSockets(toPort: port, since: socketsBefore) == 2 },
            "exactly the two connections are open: \(LiveServer.newSockets(toPort: port, since: socketsBefore))")
        await pool.shutdown()
        #expect(
            try await eventually { LiveServer.newSockets(toPort: port, since: socketsBefore) == 0 },
            "sockets to the server left after the shutdown: \(LiveServer.newSockets(toPort: port, since: socketsBefore))")
    }

    @Test func thePoolsFromTheSettingsHaveTheirSizesAndWork() async throws {
        let configuration = try LiveServer.poolPostgresConfiguration()
        var settings = Settings()
        settings.databaseURL = "postgresql://\(configuration.user)@\(configuration.hosts[0].host):\(configuration.hosts[0].port)/\(configuration.database ?? "")"
        settings.postgres.password = Secret(configuration.password ?? "")
        settings.postgres.poolMinimum = 2
        settings.postgres.poolMaximum = 4
        settings.redisURL = try LiveServer.require(LiveServer.redis.rawValue)
        settings.redis.poolMinimum = 1
        let logger = Logger(label: "pool-tests")
        let postgres = try ConnectionPool.postgres(settings: settings, logger: logger)
        let redis = try ConnectionPool.redis(settings: settings, logger: logger)
        defer { Task { await postgres.shutdown(); await redis.shutdown() } }
        #expect(postgres.configuration.minimumConnections == 2 && postgres.configuration.maximumConnections == 4)
        #expect(try await eventually { postgres.statistics.idle == 2 && redis.statistics.idle == 1 })
        let rows = try await postgres.execute("SELECT 41 + 1 AS answer").rows
        #expect(try rows.first?.decode(Int32.self, column: 0) == 42)
        try await postgres.withTransaction { _ = try await $0.execute("SELECT 1") }
        #expect(try await redis.send(["PING"]).string == "PONG")
        #expect(try await redis.pipeline([["PING"], ["ECHO", "x"]]).count == 2)
    }

    @Test func asAServiceItDrainsOnGracefulShutdown() async throws {
        let pool = try LiveServer.postgresPool(minimum: 3, maximum: 3)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [pool], logger: Logger(label: "pool-tests")))
        let running = Task { try await group.run() }
        #expect(try await eventually { pool.statistics.idle == 3 })
        // A caller holds a connection while the shutdown starts: it finishes its work.
        let borrowed = Task { try await pool.withConnection { try await $0.execute("SELECT pg_sleep(0.3)") } }
        try await Task.sleep(for: .milliseconds(50))
        await group.triggerGracefulShutdown()
        _ = try await borrowed.value
        try await running.value
        let after = pool.statistics
        #expect(after.open == 0 && after.idle == 0 && after.inUse == 0 && after.waiting == 0, "everything closed: \(after)")
        let refused = await #expect(throws: PoolError.self) { try await pool.withConnection { _ in } }
        #expect(refused?.kind == .shutDown)
    }

    @Test func theNextUserInheritsNoTransactionListenOrSetting() async throws {
        let pool = try LiveServer.postgresPool(minimum: 1, maximum: 1)
        defer { Task { await pool.shutdown() } }
        try await pool.withConnection { connection in
            _ = try await connection.simpleQuery("BEGIN; SET search_path TO pg_catalog; LISTEN pool_test")
            #expect(connection.sessionChanges.contains(.listening) && connection.sessionChanges.contains(.settings))
        }
        try await pool.withConnection { connection in
            #expect(connection.transactionStatus == .idle)
            let path = try await connection.execute("SHOW search_path").rows.first?.decode(String.self, column: 0)
            #expect(path == "\"$user\", public", "the SET was reset: \(String(describing: path))")
            let listening = try await connection.execute("SELECT count(*) FROM pg_listening_channels()").rows.first?.decode(Int64.self, column: 0)
            #expect(listening == 0)
        }
        // A failed transaction is rolled back too.
        try await pool.withConnection { connection in
            _ = try? await connection.simpleQuery("BEGIN; SELECT 1/0")
            #expect(connection.transactionStatus == .failed)
        }
        try await pool.withConnection { connection in #expect(connection.transactionStatus == .idle) }
        // A statement the user PREPAREd cannot be undone without the client's cache: the connection is replaced.
        // (Compared by server process: a freed connection object's address can be reused.)
        let first = try await pool.withConnection { connection in
            _ = try await connection.simpleQuery("PREPARE mine AS SELECT 1")
            return connection.backendKey?.processID
        }
        let second = try await pool.withConnection { $0.backendKey?.processID }
        #expect(first != nil && first != second)
    }

    @Test func connectionsThatDiedWhileIdleAreReplacedBeforeAnyCallerSeesThem() async throws {
        var configuration = try LiveServer.poolPostgresConfiguration()
        configuration.applicationName = "pool-idle-deaths"
        let pool = ConnectionPool<PostgresConnection>(
            name: "postgres", configuration: PoolConfiguration(minimumConnections: 4, maximumConnections: 4), logger: Logger(label: "pool-tests")
        ) { [configuration] _ in try await PostgresConnection.connect(configuration) }
        defer { Task { await pool.shutdown() } }
        #expect(try await eventually { pool.statistics.idle == 4 })
        let killer = try await PostgresConnection.connect(try LiveServer.poolPostgresConfiguration())
        defer { killer.close() }
        let killed = try await killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pool-idle-deaths'")
        #expect(killed.rows.count == 4)
        try await Task.sleep(for: .milliseconds(100))
        // Every caller gets a working connection: the dead ones are found before the hand-out.
        for round in 0..<8 {
            let value = try await pool.withConnection { try await $0.execute("SELECT \(Int32(round))::int4").rows.first?.decode(Int32.self, column: 0) }
            #expect(value == Int32(round))
        }
    }

    @Test func cancelThenQueryFiveHundredTimesOnOnePoolNeverHitsTheNextStatement() async throws {
        let pool = try LiveServer.postgresPool(minimum: 2, maximum: 2)
        defer { Task { await pool.shutdown() } }
        var wrong = 0
        for round in 0..<500 {
            // A statement cut by its timeout at a random point, then the next user's statement
            // on whichever connection comes back.
            _ = try? await pool.withConnection { connection in
                try await connection.execute("SELECT pg_sleep(0.01)", timeout: .microseconds(Int64(200 + (round * 37) % 9000)))
            }
            do {
                let value = try await pool.withConnection { connection in
                    try await connection.execute("SELECT \(round)::int4").rows.first?.decode(Int32.self, column: 0)
                }
                if value != Int32(round) { wrong += 1 }
            } catch let error as PostgresError where error.diagnostics?.sqlState == .queryCanceled {
                wrong += 1
            }
        }
        #expect(wrong == 0, "\(wrong) of 500 statements were hit by an earlier cancel")
    }

    @Test func aCrashedServerIsRecoveredFromWithoutManualSteps() async throws {
        let crash = try LiveServer.require("INFRA_TEST_POSTGRES_CRASH")
        let start = try LiveServer.require("INFRA_TEST_POSTGRES_START")
        let pool = try LiveServer.postgresPool(minimum: 2, maximum: 5) {
            $0.acquireTimeout = .seconds(20)
            $0.maximumBackoff = .seconds(1)
        }
        defer { Task { await pool.shutdown() } }
        let (counters, load) = LoadCounters.start { _ = try await pool.withConnection { try await $0.execute("SELECT 1") } }
        try await Task.sleep(for: .seconds(1))
        _ = try await runCommand(crash, [])
        try await Task.sleep(for: .milliseconds(500))
        _ = try await runCommand(start, [])
        let okAtRestart = counters.ok
        let (ok, failed) = try await counters.finish(after: okAtRestart, load)
        #expect(ok > okAtRestart + 100, "work goes on after the restart: \(okAtRestart) before, \(ok) in all")
        #expect(!failed.contains { $0.hasPrefix("untyped") }, "\(failed.filter { $0.hasPrefix("untyped") }.prefix(3))")
        #expect(failed.count < 200, "only work in flight failed: \(failed.count)")
        // Every connection in the pool works.
        for _ in 0..<10 { _ = try await pool.withConnection { try await $0.execute("SELECT 1") } }
    }
}

@Suite("Connection pool (live Redis)", .serialized, .timeLimit(.minutes(2)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisPoolLiveTests {
    static func pool(port: Int? = nil, password: String? = nil, minimum: Int = 1, maximum: Int = 10) throws -> ConnectionPool<RedisConnection> {
        var configuration = try RedisConfiguration(url: try LiveServer.require(LiveServer.redis.rawValue))
        if let port {
            configuration.port = port
            configuration.password = password
        }
        var poolConfiguration = PoolConfiguration(minimumConnections: minimum, maximumConnections: maximum)
        poolConfiguration.acquireTimeout = .seconds(20)
        return ConnectionPool(name: "redis", configuration: poolConfiguration, logger: Logger(label: "pool-tests")) { [configuration] _ in
            try await RedisConnection.connect(configuration)
        }
    }

    @Test func theNextUserInheritsNoDatabaseTransactionOrTracking() async throws {
        let pool = try Self.pool(maximum: 1)
        defer { Task { await pool.shutdown() } }
        let key = LiveServer.uniqueName("pool", separator: ":")
        try await pool.withConnection { connection in
            try await connection.send(["SELECT", "3"])
            try await connection.send(["MULTI"])
            try await connection.send(["SET", .string(key), "in-db-3"])
            try await connection.send(["CLIENT", "TRACKING", "ON"])
        }
        try await pool.withConnection { connection in
            #expect(connection.sessionChanges.isEmpty)
            let value = try await connection.send(["GET", .string(key)])
            #expect(value.string == nil, "the MULTI was discarded and database 0 selected again")
            let tracking = try await connection.send(["CLIENT", "TRACKINGINFO"])
            guard case .map(let fields) = tracking, let flags = fields.first(where: { $0.key.string == "flags" })?.value,
                case .set(let values) = flags
            else {
                Issue.record("CLIENT TRACKINGINFO: \(tracking)")
                return
            }
            #expect(values.compactMap(\.string) == ["off"], "client tracking is off again")
        }
    }

    @Test func connectionsKilledWhileIdleAreReplacedBeforeAnyCallerSeesThem() async throws {
        let pool = try Self.pool(minimum: 3, maximum: 3)
        defer { Task { await pool.shutdown() } }
        let name = LiveServer.uniqueName("pool-idle", separator: "-")
        for _ in 0..<3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 { group.addTask { try await pool.withConnection { _ = try await $0.send(["CLIENT", "SETNAME", .string(name)]) } } }
                try await group.waitForAll()
            }
        }
        let admin = try RedisClient(url: try LiveServer.require(LiveServer.redis.rawValue))
        defer { admin.close() }
        let list = try await admin.send(["CLIENT", "LIST"]).string ?? ""
        for line in list.split(separator: "\n") where line.contains("name=\(name)") {
            if let id = line.split(separator: " ").first(where: { $0.hasPrefix("id=") })?.dropFirst(3) {
                try await admin.send(["CLIENT", "KILL", "ID", .string(String(id))])
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        for _ in 0..<6 { #expect(try await pool.send(["PING"]).string == "PONG") }
    }

    @Test func aRestartedServerIsRecoveredFromUnderLoad() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        try await Task.sleep(for: .milliseconds(300))
        let pool = try Self.pool(port: server.port, minimum: 2, maximum: 5)
        defer { Task { await pool.shutdown() } }
        let (counters, load) = LoadCounters.start { _ = try await pool.withConnection { try await $0.send(["PING"]) } }
        try await Task.sleep(for: .seconds(1))
        server.stop()
        try await Task.sleep(for: .milliseconds(500))
        try server.start()
        let okAtRestart = counters.ok
        let (ok, failed) = try await counters.finish(after: okAtRestart, load)
        #expect(ok > okAtRestart + 100, "work goes on after the restart: \(okAtRestart) before, \(ok) in all")
        #expect(!failed.contains { $0.hasPrefix("untyped") }, "\(failed.filter { $0.hasPrefix("untyped") }.prefix(3))")
    }
}

/// What a load of many tasks did, shared with them.
final class LoadCounters: Sendable {
    let running = Atomic<Bool>(true)
    let outcomes = Mutex<(ok: Int, failed: [String])>((0, []))

    var ok: Int { outcomes.withLock { $0.ok } }

    /// `tasks` tasks calling `work` until ``stop(_:)``; failures are recorded by their typed kind
    /// ("untyped: …" for any other error).
    static func start(tasks: Int = 20, _ work: @escaping @Sendable () async throws -> Void) -> (LoadCounters, Task<Void, Never>) {
        let counters = LoadCounters()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<tasks {
                    group.addTask {
                        while counters.running.load(ordering: .relaxed) {
                            do {
                                try await work()
                                counters.outcomes.withLock { $0.ok += 1 }
                            } catch let error as PostgresError {
                                counters.outcomes.withLock { $0.failed.append("\(error.kind)") }
                            } catch let error as RedisError {
                                counters.outcomes.withLock { $0.failed.append("\(error.kind)") }
                            } catch let error as PoolError {
                                counters.outcomes.withLock { $0.failed.append("pool: \(error.kind)") }
                            } catch {
                                counters.outcomes.withLock { $0.failed.append("untyped: \(error)") }
                            }
                        }
                    }
                }
            }
        }
        return (counters, load)
    }

    /// Waits (up to 20 s) until `more` further calls succeeded after `mark`, then stops the load;
    /// returns the successes and the failures.
    func finish(after mark: Int, more: Int = 1000, _ load: Task<Void, Never>) async throws -> (ok: Int, failed: [String]) {
        _ = try await eventually(within: .seconds(20)) { self.ok > mark + more }
        running.store(false, ordering: .relaxed)
        await load.value
        return outcomes.withLock { ($0.ok, $0.failed) }
    }
}
