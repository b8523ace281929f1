import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Transport
@testable import RESP

@Suite("Redis scans (live)", .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisScanTests {
    @Test func scanSequencesVisitEveryElement() async throws {
        let client = try LiveServer.redisClient()
        defer { client.close() }
        let base = LiveServer.redisKey("scan")
        try await client.mset((0..<250).map { ("\(base):\($0)", RESPArgument.integer(Int64($0))) })
        var keys = Set<String>()
        for try await key in client.scan(match: base + ":*", count: 50) { keys.insert(key.string ?? "") }
        #expect(keys.count == 250)
        try await client.hset(base + ":h", (0..<120).map { ("f\($0)", RESPArgument.integer(Int64($0))) })
        var fields = 0
        for try await _ in client.hscan(base + ":h", count: 20) { fields += 1 }
        #expect(fields == 240, "field and value alternate")
        try await client.sadd(base + ":s", (0..<70).map { .string("m\($0)") })
        var members = Set<String>()
        for try await member in client.sscan(base + ":s") { members.insert(member.string ?? "") }
        #expect(members.count == 70)
        try await client.zadd(base + ":z", [(1, "a"), (2, "b")])
        var scored: [String] = []
        for try await item in client.zscan(base + ":z") { scored.append(item.string ?? "\(item)") }
        #expect(scored.count == 4)
        try await client.send(["DEL"] + (0..<250).map { .string("\(base):\($0)") } + [.string(base + ":h"), .string(base + ":s"), .string(base + ":z")])
    }
}
