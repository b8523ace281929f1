import Foundation
import TestSupport
import Testing
import Transport

@Suite("Live Redis", .enabled(if: LiveServer.redis.isAvailable))
struct LiveRedisTransportTests {
    private func command(_ parts: String...) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("*\(parts.count)\r\n")
        for part in parts { buffer.writeString("$\(part.utf8.count)\r\n\(part)\r\n") }
        return buffer
    }

    @Test func pipelinedAuthAndPingInOneWrite() async throws {
        let port = try #require(Int(try LiveServer.require("INFRA_TEST_REDIS_PORT")))
        let password = try LiveServer.require("INFRA_TEST_REDIS_PASSWORD")
        let connection = try await Connection.connect(to: .tcp(host: "127.0.0.1", port: port))
        defer { connection.close() }
        let before = connection.writeSystemCallCount
        try await connection.write([command("AUTH", password), command("PING"), command("ECHO", "transport")])
        #expect(connection.writeSystemCallCount - before == 1)
        let expected = "+OK\r\n+PONG\r\n$9\r\ntransport\r\n"
        var reply = ByteBuffer()
        try await readExactly(expected.utf8.count, from: connection, into: &reply)
        #expect(String(decoding: reply.readableBytesView, as: UTF8.self) == expected)
    }
}
