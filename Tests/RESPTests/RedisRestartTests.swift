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
        var gaps = 0
        for _ in 0..<50 where delivered == nil && !ended {
            try await Task.sleep(for: .milliseconds(100))
            receivers = try await client.send(["PUBLISH", "restart", "back"]).decodeInteger("PUBLISH")
            if receivers == 1 {
                delivered = try await iterator.next()
                // The marker that says messages may have been missed comes first.
                while delivered?.isGap == true {
                    gaps += 1
                    delivered = try await iterator.next()
                }
                ended = delivered == nil
            }
        }
        #expect(delivered?.text == "back",
            "the subscription was restored on the new server (receivers \(receivers), stream ended \(ended), reconnects \(subscriber.reconnectCount))")
        #expect(gaps == 1, "one gap marker after the one reconnect")
    }

    @Test func anIdleConnectionTheServerClosedIsReplacedBeforeACommandIsSentOnIt() async throws {
        let server = try PrivateRedisServer()
        defer { server.stop() }
        let client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: server.port))
        defer { client.close() }
        var ready = false
        for _ in 0..<50 where !ready {
            ready = (try? await client.send(["PING"])) != nil
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)

        // A restart while the client is idle: the next command goes out on a new connection and
        // succeeds the first time.
        server.stop()
        try server.start()
        var listening = false
        for _ in 0..<100 where !listening {
            try await Task.sleep(for: .milliseconds(50))
            listening = PortProbe.isListening(server.port)
        }
        #expect(listening)
        try await Task.sleep(for: .milliseconds(100))
        let reply = try await client.send(["SET", "after-restart", "1"])
        #expect(reply == simple("OK"))
    }
}

/// Whether something accepts TCP connections on a loopback port (for a server just restarted).
enum PortProbe {
    static func isListening(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
