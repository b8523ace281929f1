// The Redis client benchmark, beside redis-benchmark and redis-py on the same server.
//   redis-bench PORT sequential-set|sequential-get COUNT
//   redis-bench PORT pipelined-set COUNT BATCH      (one connection, batches kept in flight)
//   redis-bench PORT pipelined-set-discarding COUNT BATCH   (the same, replies discarded but errors)
//   redis-bench PORT concurrent-set COUNT TASKS     (TASKS tasks share one connection)
//   redis-bench PORT cached-get COUNT               (client-side caching on: GETs over 100 keys,
//                                                    read once each first, so every timed GET hits)
//   redis-bench - parse FILE REPEAT                 (parser throughput on a captured stream)
// Prints operations (or MB) per second. REDIS_PASSWORD, when set, is sent with AUTH.

import Foundation
import RESP
import Transport

#if canImport(Glibc)
import Glibc
#endif

struct BenchError: Error { let message: String }

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func run(_ arguments: [String]) async throws -> Double {
    guard arguments.count >= 4 else { throw BenchError(message: "usage: see the header of main.swift") }
    let mode = arguments[2]
    if mode == "parse" { return try parse(file: arguments[3], repeat: arguments.count > 4 ? Int(arguments[4]) ?? 1 : 1) }
    guard let count = Int(arguments[3]) else { throw BenchError(message: "bad count") }
    guard let port = Int(arguments[1]) else { throw BenchError(message: "bad port") }
    var configuration = RedisConfiguration(host: "127.0.0.1", port: port)
    configuration.password = ProcessInfo.processInfo.environment["REDIS_PASSWORD"]
    if mode == "cached-get" { configuration.clientCache = RedisClientCacheConfiguration() }
    let client = RedisClient(configuration: configuration)
    defer { client.close() }
    if mode == "cached-get" {
        let keys = (0..<100).map { "cached:\($0)" }
        for key in keys { try await client.set(key, "xxx") }
        for key in keys { _ = try await client.get(key) }
        let start = ContinuousClock.now
        for index in 0..<count { _ = try await client.get(keys[index % 100]) }
        let rate = Double(count) / seconds(since: start)
        guard let statistics = client.cache?.statistics, statistics.hits >= count else {
            throw BenchError(message: "not every timed GET was a cache hit: \(String(describing: client.cache?.statistics))")
        }
        return rate
    }
    let connection = try await client.connection()
    let value = RESPArgument.bytes(ByteBuffer(bytes: Array(repeating: UInt8(ascii: "x"), count: 3)))
    try await connection.send(["SET", "key:__rand_int__", value])
    switch mode {
    case "sequential-set":
        let start = ContinuousClock.now
        for _ in 0..<count { try await connection.send(["SET", "key:__rand_int__", value]) }
        return Double(count) / seconds(since: start)
    case "sequential-get":
        let start = ContinuousClock.now
        for _ in 0..<count { try await connection.send(["GET", "key:__rand_int__"]) }
        return Double(count) / seconds(since: start)
    case "pipelined-set", "pipelined-set-discarding":
        let discarding = mode == "pipelined-set-discarding"
        let batchSize = Int(arguments[4]) ?? 1000
        let batch = [[RESPArgument]](repeating: ["SET", "key:__rand_int__", value], count: batchSize)
        let batches = count / batchSize
        let inFlight = 4
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var issued = 0
            @Sendable func send() async throws {
                if discarding {
                    let errors = try await connection.pipelineDiscardingReplies(batch)
                    if !errors.isEmpty { throw BenchError(message: "\(errors.count) errors in a batch") }
                } else {
                    _ = try await connection.pipeline(batch)
                }
            }
            for _ in 0..<Swift.min(inFlight, batches) {
                group.addTask { try await send() }
                issued += 1
            }
            while try await group.next() != nil {
                if issued < batches {
                    group.addTask { try await send() }
                    issued += 1
                }
            }
        }
        return Double(batches * batchSize) / seconds(since: start)
    case "concurrent-set":
        let tasks = Int(arguments[4]) ?? 50
        let perTask = count / tasks
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask { for _ in 0..<perTask { try await connection.send(["SET", "key:__rand_int__", value]) } }
            }
            try await group.waitForAll()
        }
        return Double(perTask * tasks) / seconds(since: start)
    default:
        throw BenchError(message: "unknown mode \(mode)")
    }
}

func parse(file: String, repeat times: Int) throws -> Double {
    guard let data = FileManager.default.contents(atPath: file) else { throw BenchError(message: "cannot read \(file)") }
    let bytes = [UInt8](data)
    let start = ContinuousClock.now
    var values = 0
    for _ in 0..<times {
        var parser = RESPParser()
        var buffer = ByteBuffer()
        var offset = 0
        while offset < bytes.count {
            let end = Swift.min(bytes.count, offset + 16384)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            while try parser.next(&buffer) != nil { values += 1 }
            buffer.compact()
        }
    }
    precondition(values > 0)
    return Double(bytes.count * times) / 1e6 / seconds(since: start)
}

let task = Task.detached { try await run(CommandLine.arguments) }
do {
    let rate = try await task.value
    print(Int(rate.rounded()))
} catch {
    print("redis-bench: \(error)")
    exit(1)
}
