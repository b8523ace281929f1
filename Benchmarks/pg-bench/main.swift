// The PostgreSQL client benchmark, beside postgres-nio, asyncpg, psycopg and pgbench on one server.
//   pg-bench HOST PORT USER PASSWORD DATABASE MODE COUNT
// Modes: select1 (simple protocol), prepared (SELECT $1::int, cached statement), fetch (COUNT rows
// of (int8, text, timestamptz) decoded into (Int, String, Date)), insert (COUNT rows
// with executeMany, pipelined on one connection), copy (COUNT rows by COPY FROM STDIN, text),
// copy-rows (COUNT typed rows by copyIn(into:columns:), binary),
// connect (connect + SCRAM + close), pool (50 tasks doing SELECT 1 through a pool of 10 for COUNT
// seconds; the acquire wait's p50 and p99 go to standard error), migrate-noop (COUNT times: connect,
// take the migration lock and find migrations/ fully applied; prints the mean milliseconds per run).
// Prints operations (rows) per second.

import Foundation
import Infra
import Logging
import PGWire

struct BenchError: Error { let message: String }

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func run(_ arguments: [String]) async throws -> Double {
    guard arguments.count >= 8, let port = Int(arguments[2]), let count = Int(arguments[7]) else {
        throw BenchError(message: "usage: pg-bench HOST PORT USER PASSWORD DATABASE MODE COUNT")
    }
    let configuration = PostgresConfiguration(
        hosts: [.init(arguments[1], port: port)], user: arguments[3], password: arguments[4], database: arguments[5], sslMode: .disable)
    let mode = arguments[6]
    if mode == "connect" {
        let start = ContinuousClock.now
        for _ in 0..<count {
            let connection = try await PostgresConnection.connect(configuration)
            connection.close()
        }
        return Double(count) / seconds(since: start)
    }
    if mode == "pool" { return try await poolRate(configuration, seconds: count) }
    if mode == "migrate-noop" {
        let graph = try MigrationGraph(try Migration.load(directory: "migrations"))
        let runner = MigrationRunner(graph: graph) { try await PostgresConnection.connect(configuration) }
        try await runner.upgrade()
        let start = ContinuousClock.now
        for _ in 0..<count {
            guard try await runner.upgrade().isEmpty else { throw BenchError(message: "an upgrade applied something") }
        }
        return seconds(since: start) * 1000 / Double(count)
    }
    let connection = try await PostgresConnection.connect(configuration)
    defer { connection.close() }
    switch mode {
    case "select1":
        let start = ContinuousClock.now
        for _ in 0..<count { _ = try await connection.simpleQuery("SELECT 1") }
        return Double(count) / seconds(since: start)
    case "prepared":
        let start = ContinuousClock.now
        for index in 0..<count {
            let rows = try await connection.query("SELECT \(Int32(truncatingIfNeeded: index))::int")
            for try await row in rows { _ = try row.decode(Int32.self, column: 0) }
        }
        return Double(count) / seconds(since: start)
    case "fetch":
        let start = ContinuousClock.now
        let rows = try await connection.query("SELECT g, g::text, now() FROM generate_series(1, \(count)) g")
        var total = 0
        for try await row in rows {
            let (number, _, _) = try row.decode((Int, String, Date).self)
            total &+= number
        }
        precondition(total > 0)
        return Double(count) / seconds(since: start)
    case "insert":
        _ = try await connection.simpleQuery("DROP TABLE IF EXISTS bench_pgwire; CREATE UNLOGGED TABLE bench_pgwire (id int, name text)")
        let start = ContinuousClock.now
        var batch: [PostgresBindings] = []
        batch.reserveCapacity(count)
        for index in 0..<count {
            var bindings = PostgresBindings()
            bindings.append(Int32(index))
            bindings.append("name-\(index)")
            batch.append(bindings)
        }
        let outcomes = try await connection.executeMany("INSERT INTO bench_pgwire VALUES ($1, $2)", batch)
        precondition(outcomes.allSatisfy { if case .success = $0 { true } else { false } })
        return Double(count) / seconds(since: start)
    case "copy":
        _ = try await connection.simpleQuery("DROP TABLE IF EXISTS bench_pgwire; CREATE UNLOGGED TABLE bench_pgwire (id int, name text)")
        let start = ContinuousClock.now
        let copied = try await connection.copyIn("COPY bench_pgwire FROM STDIN") { writer in
            for index in 0..<count { try await writer.write("\(index)\tname-\(index)\n") }
        }
        precondition(copied == count)
        return Double(count) / seconds(since: start)
    case "copy-rows":
        _ = try await connection.simpleQuery("DROP TABLE IF EXISTS bench_pgwire; CREATE UNLOGGED TABLE bench_pgwire (id int, name text)")
        let start = ContinuousClock.now
        let copied = try await connection.copyIn(into: "bench_pgwire", columns: ["id", "name"]) { writer in
            for index in 0..<count { try await writer.writeRow(index, "name-\(index)") }
        }
        precondition(copied == count)
        return Double(count) / seconds(since: start)
    default:
        throw BenchError(message: "unknown mode \(mode)")
    }
}

/// 50 tasks doing `SELECT 1` through a pool of 10 for `seconds`; queries per second, and the
/// acquire wait's percentiles on standard error.
func poolRate(_ configuration: PostgresConfiguration, seconds duration: Int) async throws -> Double {
    let pool = ConnectionPool<PostgresConnection>(
        name: "bench", configuration: PoolConfiguration(minimumConnections: 10, maximumConnections: 10),
        logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
    ) { _ in
        try await PostgresConnection.connect(configuration)  // as ConnectionPool.postgres(settings:) configures it
    }
    // Warm up: every connection open.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<10 { group.addTask { _ = try await pool.withConnection { try await $0.execute("SELECT 1") } } }
        try await group.waitForAll()
    }
    let stop = ContinuousClock.now + .seconds(duration)
    let start = ContinuousClock.now
    let waits = try await withThrowingTaskGroup(of: [Int64].self) { group in
        for _ in 0..<50 {
            group.addTask {
                var waits: [Int64] = []
                waits.reserveCapacity(50_000)
                while ContinuousClock.now < stop {
                    let asked = ContinuousClock.now
                    try await pool.withConnection { connection in
                        let waited = asked.duration(to: .now)
                        waits.append(waited.components.seconds * 1_000_000 + waited.components.attoseconds / 1_000_000_000_000)
                        _ = try await connection.execute("SELECT 1")
                    }
                }
                return waits
            }
        }
        var all: [Int64] = []
        for try await part in group { all += part }
        return all.sorted()
    }
    let rate = Double(waits.count) / seconds(since: start)
    await pool.shutdown()
    let p50 = waits.isEmpty ? 0 : waits[waits.count / 2]
    let p99 = waits.isEmpty ? 0 : waits[min(waits.count - 1, waits.count * 99 / 100)]
    FileHandle.standardError.write(Data("acquire wait p50 us: \(p50) p99 us: \(p99)\n".utf8))
    return rate
}

let task = Task.detached { try await run(CommandLine.arguments) }
do {
    print(Int(try await task.value.rounded()))
} catch {
    print("pg-bench: \(error)")
    exit(1)
}
