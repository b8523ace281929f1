import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Transport
@testable import RESP

// Serialized: the resubscribe test kills every pub/sub connection of the server.
@Suite("Redis pub/sub (live)", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisPubSubTests {
    @Test func channelsAndPatternsAsAsyncSequences() async throws {
        let client = try LiveServer.redisClient()
        let subscriber = RedisSubscriber(configuration: client.configuration)
        defer { client.close(); subscriber.close() }
        let channel = LiveServer.redisKey("events")
        let messages = try await subscriber.subscribe([channel])
        let patterned = try await subscriber.psubscribe([channel + ".*"])
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await client.send(["PUBLISH", .string(channel), "one"]) == .integer(1))
        #expect(try await client.send(["PUBLISH", .string(channel + ".sub"), "two"]) == .integer(1))
        var iterator = messages.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?.channel == channel && first?.text == "one")
        var patternIterator = patterned.makeAsyncIterator()
        let second = try await patternIterator.next()
        #expect(second?.channel == channel + ".sub" && second?.pattern == channel + ".*" && second?.text == "two")
    }

    @Test func resubscribesAfterTheConnectionDrops() async throws {
        let client = try LiveServer.redisClient()
        let subscriber = RedisSubscriber(configuration: client.configuration)
        defer { client.close(); subscriber.close() }
        let channel = LiveServer.redisKey("resubscribe")
        let messages = try await subscriber.subscribe([channel])
        try await Task.sleep(for: .milliseconds(100))
        // Kill every pub/sub client of this channel from the command connection.
        try await client.send(["CLIENT", "KILL", "TYPE", "pubsub"])
        var delivered: RedisMessage?
        var gaps = 0
        var iterator = messages.makeAsyncIterator()
        let deadline = ContinuousClock.now + .seconds(5)
        while delivered == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            let receivers = try await client.send(["PUBLISH", .string(channel), "after"]).decodeInteger("PUBLISH")
            if receivers == 1 {
                delivered = try await iterator.next()
                // First the marker that messages published meanwhile are lost.
                while delivered?.isGap == true {
                    gaps += 1
                    delivered = try await iterator.next()
                }
            }
        }
        #expect(delivered?.text == "after")
        #expect(subscriber.reconnectCount >= 1 && gaps == subscriber.reconnectCount)
    }
}
