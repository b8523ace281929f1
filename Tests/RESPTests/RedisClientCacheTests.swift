import Foundation
import Synchronization
import Testing
import TestSupport
import Transport
@testable import RESP

extension LiveServer {
    /// A client of the test server with client-side caching on.
    static func cachingRedisClient(_ cache: RedisClientCacheConfiguration = RedisClientCacheConfiguration(), database: Int? = nil) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: try require(LiveServer.redis.rawValue))
        configuration.clientCache = cache
        if let database { configuration.database = database }
        return RedisClient(configuration: configuration)
    }
}

@Suite("Redis client-side caching (live)", .timeLimit(.minutes(2)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisClientCacheTests {
    @Test func aSecondReadIsAnsweredLocallyAndAnotherClientsWriteInvalidatesIt() async throws {
        let reader = try LiveServer.cachingRedisClient()
        let writer = try LiveServer.redisClient()
        defer {
            reader.close()
            writer.close()
        }
        let cache = try #require(reader.cache)
        let key = LiveServer.redisKey("cache")
        try await writer.set(key, "one")
        #expect(try await reader.get(key) == "one")
        #expect(try await reader.get(key) == "one")
        #expect(try await reader.hget(key + ":absent", "f") == nil)
        #expect(try await reader.hget(key + ":absent", "f") == nil, "a null reply is cached too")
        var statistics = cache.statistics
        #expect(statistics.hits == 2 && statistics.misses == 2 && statistics.entries == 2)

        // The writer's SET returns after the server queued the invalidation to the reader; one
        // round trip on the reader's connection later it has been handled.
        try await writer.set(key, "two")
        #expect(try await reader.connection().ping())
        #expect(try await reader.get(key) == "two")
        statistics = cache.statistics
        #expect(statistics.invalidations >= 1 && statistics.misses == 3)

        // The reader's own write invalidates its entry as well.
        try await reader.set(key, "three")
        #expect(try await reader.get(key) == "three")
        _ = try await writer.delete(key)
    }

    @Test func aWriteThatOvertakesAMissIsNeverStored() async throws {
        // Reserve, let the invalidation come, then store: the store is refused.
        let cache = RedisClientCache(configuration: RedisClientCacheConfiguration())
        let request = try #require(cache.request(for: ["GET", "k"]))
        guard case .miss(let token) = cache.lookup(request) else {
            Issue.record("expected a miss")
            return
        }
        let invalidation = RESPValue.push([.bulkString(ByteBuffer(string: "invalidate")), .array([.bulkString(ByteBuffer(string: "k"))])])
        #expect(cache.observe(.push(invalidation)))
        cache.store(request, token: token, reply: .bulkString(ByteBuffer(string: "old")))
        #expect(cache.statistics.discardedStores == 1 && cache.statistics.entries == 0)
        guard case .miss(let second) = cache.lookup(request) else {
            Issue.record("expected a miss")
            return
        }
        cache.store(request, token: second, reply: .bulkString(ByteBuffer(string: "new")))
        guard case .hit(let value) = cache.lookup(request) else {
            Issue.record("expected a hit")
            return
        }
        #expect(value.string == "new")
        // A reservation made before the connection ended is refused as well.
        let third = try #require(cache.request(for: ["GET", "j"]))
        guard case .miss(let thirdToken) = cache.lookup(third) else { return }
        #expect(!cache.observe(.closed))
        cache.store(third, token: thirdToken, reply: .bulkString(ByteBuffer(string: "x")))
        #expect(cache.statistics.entries == 0)
    }

    @Test func onlyReadCommandsAreCachedAndOnlyUnderTheBroadcastPrefixes() throws {
        let cache = RedisClientCache(configuration: RedisClientCacheConfiguration())
        #expect(cache.request(for: ["SET", "k", "v"]) == nil)
        #expect(cache.request(for: ["INCR", "k"]) == nil)
        #expect(cache.request(for: ["TTL", "k"]) == nil, "time-dependent")
        #expect(cache.request(for: ["get", "k"])?.keys == [ByteBuffer(string: "k")], "any letter case")
        #expect(cache.request(for: ["MGET", "a", "b"])?.keys == [ByteBuffer(string: "a"), ByteBuffer(string: "b")])
        #expect(cache.request(for: ["HGET", "h", "f"])?.keys == [ByteBuffer(string: "h")])
        let broadcast = RedisClientCache(configuration: RedisClientCacheConfiguration(mode: .broadcast(prefixes: ["user:", "job:"])))
        #expect(broadcast.request(for: ["GET", "user:1"]) != nil)
        #expect(broadcast.request(for: ["GET", "other:1"]) == nil)
        #expect(broadcast.request(for: ["MGET", "user:1", "other:1"]) == nil, "every key must be under a prefix")
        let ok = RESPValue.simpleString(ByteBuffer(string: "QUEUED"))
        let request = try #require(cache.request(for: ["GET", "q"]))
        if case .miss(let token) = cache.lookup(request) { cache.store(request, token: token, reply: ok) }
        #expect(cache.statistics.entries == 0, "a read queued inside a MULTI is not a reply")
    }

    @Test func broadcastModeInvalidatesKeysItNeverRead() async throws {
        let prefix = LiveServer.redisKey("bcast") + ":"
        let reader = try LiveServer.cachingRedisClient(RedisClientCacheConfiguration(mode: .broadcast(prefixes: [prefix])))
        let writer = try LiveServer.redisClient()
        defer {
            reader.close()
            writer.close()
        }
        try await writer.set(prefix + "a", "1")
        #expect(try await reader.get(prefix + "a") == "1")
        #expect(try await reader.get(prefix + "a") == "1")
        #expect(reader.cache?.statistics.hits == 1)
        try await writer.set(prefix + "a", "2")
        #expect(try await reader.connection().ping())
        #expect(try await reader.get(prefix + "a") == "2")
        // Outside the prefix nothing is cached (no invalidation would come).
        let outside = LiveServer.redisKey("outside")
        try await writer.set(outside, "x")
        #expect(try await reader.get(outside) == "x")
        #expect(try await reader.get(outside) == "x")
        #expect(reader.cache?.statistics.hits == 1)
        _ = try await writer.delete(prefix + "a", outside)
    }

    @Test func aFlushOfTheDatabaseAndAReconnectEmptyTheCache() async throws {
        // A database of its own: FLUSHDB there touches no other test's keys.
        let reader = try LiveServer.cachingRedisClient(database: 9)
        var writerConfiguration = try RedisConfiguration(url: try LiveServer.require(LiveServer.redis.rawValue))
        writerConfiguration.database = 9
        let writer = RedisClient(configuration: writerConfiguration)
        defer {
            reader.close()
            writer.close()
        }
        let cache = try #require(reader.cache)
        try await writer.set("cached:a", "1")
        try await writer.set("cached:b", "2")
        _ = try await reader.mget(["cached:a", "cached:b"])
        _ = try await reader.get("cached:a")
        #expect(cache.statistics.entries == 2)
        try await writer.send(["FLUSHDB"])
        #expect(try await reader.connection().ping())
        #expect(cache.statistics.entries == 0 && cache.statistics.flushes >= 2, "the null invalidation drops everything")
        #expect(try await reader.get("cached:a") == nil)

        // The server drops the reader's connection; a write lands meanwhile; the next read must
        // not answer from what was cached on the old connection.
        try await writer.set("cached:a", "before")
        #expect(try await reader.connection().ping())
        #expect(try await reader.get("cached:a") == "before")
        #expect(cache.statistics.entries == 1)
        let name = "cache-reader-\(UInt32.random(in: 0...UInt32.max))"
        try await reader.send(["CLIENT", "SETNAME", .string(name)])
        let id = try await reader.send(["CLIENT", "ID"])
        guard case .integer(let clientID) = id else {
            Issue.record("CLIENT ID answered \(id)")
            return
        }
        try await writer.send(["CLIENT", "KILL", "ID", RESPArgument.integer(clientID)])
        try await writer.set("cached:a", "after")
        var value: String?
        for _ in 0..<50 {
            do {
                value = try await reader.get("cached:a")
                if value == "after" { break }
            } catch let error as RedisError where error.kind == .connection {
                continue  // a read in flight when the connection dropped
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(value == "after")
        try await writer.send(["FLUSHDB"])
    }

    @Test func memoryStaysWithinTheConfiguredBounds() async throws {
        let reader = try LiveServer.cachingRedisClient(RedisClientCacheConfiguration(maximumEntries: 100, maximumBytes: 64 * 1024))
        defer { reader.close() }
        let cache = try #require(reader.cache)
        let base = LiveServer.redisKey("bound")
        let value = String(repeating: "v", count: 1000)
        _ = try await reader.pipelineDiscardingReplies((0..<300).map { ["SET", .string("\(base):\($0)"), .string(value)] })
        for index in 0..<300 {
            _ = try await reader.get("\(base):\(index)")
            let statistics = cache.statistics
            #expect(statistics.entries <= 100 && statistics.bytes <= 64 * 1024)
        }
        let statistics = cache.statistics
        #expect(statistics.evictions >= 200 && statistics.entries > 0)
        // The most recently used survive: the last read is a hit.
        _ = try await reader.get("\(base):299")
        #expect(cache.statistics.hits == 1)
        // A reply larger than an eighth of the bytes bound is returned, not kept.
        try await reader.set(base + ":large", .string(String(repeating: "x", count: 10_000)))
        _ = try await reader.get(base + ":large")
        _ = try await reader.get(base + ":large")
        #expect(cache.statistics.hits == 1)
        _ = try await reader.pipelineDiscardingReplies((0..<300).map { ["DEL", .string("\(base):\($0)")] } + [["DEL", .string(base + ":large")]])
    }

    /// Two writers increment keys while a caching reader reads them: a read never returns a
    /// value older than one the reader has read before, nor older than a write that was
    /// acknowledged before the reader's last completed round trip began.
    @Test func randomInterleavingNeverReadsAStaleValue() async throws {
        let reader = try LiveServer.cachingRedisClient()
        let writers = [try LiveServer.redisClient(), try LiveServer.redisClient()]
        defer {
            reader.close()
            for writer in writers { writer.close() }
        }
        let base = LiveServer.redisKey("interleave")
        let keys = (0..<16).map { "\(base):\($0)" }
        _ = try await writers[0].pipelineDiscardingReplies(keys.map { ["SET", .string($0), "0"] })
        let shared = InterleavingState(keys: keys.count)
        let writesPerWriter = 25_000
        let readerOperations = 50_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (number, writer) in writers.enumerated() {
                group.addTask {
                    var generator = SplitMix64(seed: UInt64(number + 1))
                    for _ in 0..<writesPerWriter where !shared.stop.load(ordering: .relaxed) {
                        let index = Int(generator.next() % UInt64(keys.count))
                        let value = try await writer.increment(keys[index])
                        shared.acknowledged.withLock { $0[index] = max($0[index], value) }
                    }
                }
            }
            group.addTask {
                defer { shared.stop.store(true, ordering: .relaxed) }
                var generator = SplitMix64(seed: 99)
                var lastRead = [Int64](repeating: 0, count: keys.count)
                var floor = [Int64](repeating: 0, count: keys.count)
                for operation in 0..<readerOperations {
                    if operation % 16 == 0 {
                        // A round trip: every invalidation sent before its reply is handled.
                        let started = shared.acknowledged.withLock { $0 }
                        _ = try await reader.connection().ping()
                        floor = started
                        continue
                    }
                    let index = Int(generator.next() % UInt64(keys.count))
                    let read = Int64(try await reader.get(keys[index]) ?? "") ?? -1
                    #expect(read >= lastRead[index], "key \(index) went back from \(lastRead[index]) to \(read)")
                    #expect(read >= floor[index], "key \(index) read \(read), but \(floor[index]) was acknowledged before the last round trip")
                    lastRead[index] = max(lastRead[index], read)
                }
            }
            try await group.waitForAll()
        }
        let statistics = try #require(reader.cache).statistics
        #expect(statistics.hits > 0 && statistics.invalidations > 0)
        _ = try await writers[0].pipelineDiscardingReplies(keys.map { ["DEL", .string($0)] })
    }
}

/// What the interleaving test's tasks share: the highest acknowledged value of each key, and
/// whether the reader is done.
private final class InterleavingState: Sendable {
    let acknowledged: Mutex<[Int64]>
    let stop = Atomic<Bool>(false)

    init(keys: Int) { acknowledged = Mutex([Int64](repeating: 0, count: keys)) }
}
