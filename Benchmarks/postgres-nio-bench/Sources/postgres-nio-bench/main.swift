// The PostgreSQL workloads of pg-bench, run with postgres-nio (the peer), same arguments:
//   postgres-nio-bench HOST PORT USER PASSWORD DATABASE MODE COUNT
// Modes: select1 (simple protocol), prepared (SELECT $1::int), fetch (COUNT rows decoded into
// (Int, String, Date)), insert (COUNT rows, 50 tasks pipelined), copy (COUNT rows by COPY FROM
// STDIN), connect (connect + SCRAM + close), pool (50 tasks doing SELECT 1 through a PostgresClient
// of 10 connections for COUNT seconds; the acquire wait's p50 and p99 go to standard error).
// Prints operations (or rows) per second.

import Foundation
import Logging
import PostgresNIO

struct BenchError: Error { let message: String }

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func run(_ arguments: [String]) async throws -> Double {
    guard arguments.count >= 8, let port = Int(arguments[2]), let count = Int(arguments[7]) else {
        throw BenchError(message: "usage: postgres-nio-bench HOST PORT USER PASSWORD DATABASE MODE COUNT")
    }
    let configuration = PostgresConnection.Configuration(
        host: arguments[1], port: port, username: arguments[3], password: arguments[4], database: arguments[5], tls: .disable)
    let logger = Logger(label: "bench")
    let mode = arguments[6]
    if mode == "connect" {
        let start = ContinuousClock.now
        for id in 0..<count {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
            try await connection.close()
        }
        return Double(count) / seconds(since: start)
    }
    if mode == "pool" { return try await poolRate(arguments, port: port, seconds: count) }
    let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    defer { Task { try? await connection.close() } }
    switch mode {
    case "select1":
        let start = ContinuousClock.now
        for _ in 0..<count {
            // postgres-nio has no simple-protocol query; an unnamed extended query is its nearest.
            let rows = try await connection.query("SELECT 1", logger: logger)
            for try await _ in rows {}
        }
        return Double(count) / seconds(since: start)
    case "prepared":
        let start = ContinuousClock.now
        for index in 0..<count {
            let rows = try await connection.query("SELECT \(Int32(index))::int", logger: logger)
            for try await row in rows { _ = try row.decode(Int32.self) }
        }
        return Double(count) / seconds(since: start)
    case "fetch":
        let start = ContinuousClock.now
        let rows = try await connection.query("SELECT g, g::text, now() FROM generate_series(1, \(count)) g", logger: logger)
        var total = 0
        for try await (number, _, _) in rows.decode((Int, String, Date).self) { total &+= number }
        precondition(total > 0)
        return Double(count) / seconds(since: start)
    case "insert":
        try await connection.query("DROP TABLE IF EXISTS bench_nio", logger: logger)
        try await connection.query("CREATE UNLOGGED TABLE bench_nio (id int, name text)", logger: logger)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            let tasks = 50
            for task in 0..<tasks {
                group.addTask {
                    var index = task
                    while index < count {
                        try await connection.query("INSERT INTO bench_nio VALUES (\(Int32(index)), \("name-\(index)"))", logger: logger)
                        index += tasks
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / seconds(since: start)
    case "copy":
        try await connection.query("DROP TABLE IF EXISTS bench_nio", logger: logger)
        try await connection.query("CREATE UNLOGGED TABLE bench_nio (id int, name text)", logger: logger)
        let start = ContinuousClock.now
        try await connection.copyFrom(table: "bench_nio", columns: ["id", "name"], logger: logger) { writer in
            var chunk = ByteBuffer()
            for index in 0..<count {
                chunk.writeString("\(index)\tname-\(index)\n")
                if chunk.readableBytes >= 65536 {
                    try await writer.write(chunk)
                    chunk.clear()
                }
            }
            if chunk.readableBytes > 0 { try await writer.write(chunk) }
        }
        return Double(count) / seconds(since: start)
    default:
        throw BenchError(message: "unknown mode \(mode)")
    }
}

/// 50 tasks doing `SELECT 1` through a PostgresClient of 10 connections for `seconds`.
func poolRate(_ arguments: [String], port: Int, seconds duration: Int) async throws -> Double {
    let logger = Logger(label: "bench")
    var configuration = PostgresClient.Configuration(
        host: arguments[1], port: port, username: arguments[3], password: arguments[4], database: arguments[5], tls: .disable)
    configuration.options.minimumConnections = 10
    configuration.options.maximumConnections = 10
    let client = PostgresClient(configuration: configuration)
    return try await withThrowingTaskGroup(of: Double?.self) { outer in
        outer.addTask {
            await client.run()
            return nil
        }
        // Warm up: every connection open.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { try await client.withConnection { _ = try await $0.query("SELECT 1", logger: logger) } } }
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
                        try await client.withConnection { connection in
                            let waited = asked.duration(to: .now)
                            waits.append(waited.components.seconds * 1_000_000 + waited.components.attoseconds / 1_000_000_000_000)
                            let rows = try await connection.query("SELECT 1", logger: logger)
                            for try await _ in rows {}
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
        let p50 = waits.isEmpty ? 0 : waits[waits.count / 2]
        let p99 = waits.isEmpty ? 0 : waits[min(waits.count - 1, waits.count * 99 / 100)]
        FileHandle.standardError.write(Data("acquire wait p50 us: \(p50) p99 us: \(p99)\n".utf8))
        outer.cancelAll()
        return rate
    }
}

let task = Task.detached { try await run(CommandLine.arguments) }
do {
    print(Int(try await task.value.rounded()))
} catch {
    print("postgres-nio-bench: \(error)")
    exit(1)
}
