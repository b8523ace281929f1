import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Transport
@testable import RESP

@Suite("Redis server restart", .timeLimit(.minutes(1)), .enabled(if: LiveServer.redis.isAvailable))
struct RedisRestartTests {
    @Test func clientAndSubscriberRecoverFromARestart() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        let configuration = RedisConfiguration(host: "127.0.0.1", port: server.port)
        let client = RedisClient(configuration: configuration)
        let subscriber = RedisSubscriber(configuration: configuration)
        defer { client.close(); subscriber.close() }
        var ready = false
        for _ in 0..<50 where !ready {
            ready = (try? await client.send(["PING"])) != nil
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        let messages = try await subscriber.subscribe(["restart"])

        server.stop()
        let failure = await #expect(throws: RedisError.self) { try await client.send(["PING"]) }
        #expect(failure?.kind == .connection)
        try server.start()

        var recovered = false
        for _ in 0..<50 where !recovered {
            try await Task.sleep(for: .milliseconds(100))
            recovered = (try? await client.send(["PING"])) == simple("PONG")
        }
        #expect(recovered, "new commands reconnect once the server is back")
        var delivered: RedisMessage?
        var iterator = messages.makeAsyncIterator()
        var receivers: Int64 = -1
        var ended = false
        for _ in 0..<50 where delivered == nil && !ended {
            try await Task.sleep(for: .milliseconds(100))
            receivers = try await client.send(["PUBLISH", "restart", "back"]).decodeInteger("PUBLISH")
            if receivers == 1 {
                delivered = try await iterator.next()
                ended = delivered == nil
            }
        }
        #expect(delivered?.text == "back",
            "the subscription was restored on the new server (receivers \(receivers), stream ended \(ended), reconnects \(subscriber.reconnectCount))")
    }
}
