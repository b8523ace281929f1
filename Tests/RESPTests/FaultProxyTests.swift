import Foundation
import TestSupport
import Testing
import Transport

@testable import RESP

/// Redis through a proxy that misbehaves: a reply cut midway is a typed error and the next
/// command works on a new connection; a black-holed server is found by the timeouts; a link of
/// single bytes still carries a pipeline.
@Suite("Redis through a faulty link", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisFaultProxyTests {
    func configuration(_ proxy: FaultProxy) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: try LiveServer.require(LiveServer.redis.rawValue))
        configuration.port = proxy.port
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        return configuration
    }

    func upstreamPort() throws -> Int {
        try RedisConfiguration(url: try LiveServer.require(LiveServer.redis.rawValue)).port
    }

    @Test func aReplyCutMidwayIsATypedErrorAndTheNextCommandWorks() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort())
        defer { proxy.close() }
        let client = RedisClient(configuration: try configuration(proxy))
        defer { client.close() }
        let key = LiveServer.redisKey("cut")
        try await client.send(["SET", .string(key), .string(String(repeating: "v", count: 100_000))])
        proxy.setMode(.cutDownstream(afterBytes: 5000))
        let error = await #expect(throws: RedisError.self) { try await client.send(["GET", .string(key)]) }
        #expect(error?.kind == .connection, "\(String(describing: error))")
        proxy.setMode(.pass)
        let value = try await client.send(["GET", .string(key)])
        #expect(value.string?.count == 100_000, "a new connection answers")
        try await client.send(["DEL", .string(key)])
    }

    @Test func aBlackHoledServerIsFoundByTheTimeouts() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort(), mode: .blackHole)
        defer { proxy.close() }
        let clock = ContinuousClock()
        var start = clock.now
        await #expect(throws: RedisError.self) { _ = try await RedisConnection.connect(try configuration(proxy)) }
        #expect(clock.now - start < .seconds(3))
        proxy.setMode(.pass)
        let client = RedisClient(configuration: try configuration(proxy))
        defer { client.close() }
        _ = try await client.send(["PING"])
        proxy.setMode(.blackHole)
        start = clock.now
        let error = await #expect(throws: RedisError.self) { try await client.send(["PING"]) }
        #expect(error?.kind == .timedOut && clock.now - start < .seconds(4), "\(String(describing: error))")
    }

    @Test func aLinkOfSingleBytesStillCarriesAPipeline() async throws {
        let proxy = try FaultProxy(upstreamPort: try upstreamPort(), mode: .singleBytes)
        defer { proxy.close() }
        let connection = try await RedisConnection.connect(try configuration(proxy))
        defer { connection.close() }
        let key = LiveServer.redisKey("bytes")
        let commands: [[RESPArgument]] = (0..<100).map { _ in ["INCR", .string(key)] }
        let replies = try await connection.pipeline(commands)
        #expect(replies.last == RESPValue.integer(100))
        _ = try await connection.send(["DEL", .string(key)])
    }
}
