import Foundation
import Testing
import Transport

// The transport against the real servers that `make test` starts. Outside CI these skip when the
// servers are not running; in CI (CI=true) a missing server fails them.

@Suite("Live PostgreSQL", .enabled(if: LiveServers.available("INFRA_TEST_POSTGRES_PORT")))
struct LivePostgreSQLTransportTests {
    /// PostgreSQL's SSLRequest: length 8, code 80877103.
    private var sslRequest: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(8))
        buffer.writeInteger(Int32(80_877_103))
        return buffer
    }

    @Test func sslRequestThenVerifiedTLS() async throws {
        let port = try #require(Int(try LiveServers.require("INFRA_TEST_POSTGRES_PORT")))
        let caFile = try LiveServers.require("INFRA_TEST_POSTGRES_CA_FILE")
        let connection = try await Connection.connect(to: .tcp(host: "localhost", port: port))
        defer { connection.close() }
        try await connection.write(sslRequest)
        var reply = ByteBuffer()
        try await readExactly(1, from: connection, into: &reply)
        #expect(reply.readInteger(as: UInt8.self) == UInt8(ascii: "S"))
        #expect(reply.isEmpty, "no plaintext may follow the server's S")
        let context = try TLSContext(configuration: TLSConfiguration(trustRoots: .file(caFile)))
        try await connection.startTLS(context, serverName: "localhost")
        #expect(connection.isTLS)
        #expect(connection.tlsServerEndPoint?.count == 32, "ECDSA-SHA256 certificate: a SHA-256 binding")
    }

    @Test func unixSocketAnswersSSLRequestWithN() async throws {
        let port = try LiveServers.require("INFRA_TEST_POSTGRES_PORT")
        let directory = try LiveServers.require("INFRA_TEST_POSTGRES_SOCKET_DIR")
        let connection = try await Connection.connect(to: .unix(path: "\(directory)/.s.PGSQL.\(port)"))
        defer { connection.close() }
        try await connection.write(sslRequest)
        var reply = ByteBuffer()
        try await readExactly(1, from: connection, into: &reply)
        #expect(reply.readInteger(as: UInt8.self) == UInt8(ascii: "N"))
    }
}

@Suite("Live Redis", .enabled(if: LiveServers.available("INFRA_TEST_REDIS_PORT")))
struct LiveRedisTransportTests {
    private func command(_ parts: String...) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("*\(parts.count)\r\n")
        for part in parts { buffer.writeString("$\(part.utf8.count)\r\n\(part)\r\n") }
        return buffer
    }

    @Test func pipelinedAuthAndPingInOneWrite() async throws {
        let port = try #require(Int(try LiveServers.require("INFRA_TEST_REDIS_PORT")))
        let password = try LiveServers.require("INFRA_TEST_REDIS_PASSWORD")
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

@Suite("Live NATS", .enabled(if: LiveServers.available("INFRA_TEST_NATS_URL")))
struct LiveNATSTransportTests {
    @Test func infoFirstThenPingPong() async throws {
        let url = try LiveServers.require("INFRA_TEST_NATS_URL")
        let port = try #require(url.split(separator: ":").last.flatMap { Int($0) })
        let connection = try await Connection.connect(to: .tcp(host: "127.0.0.1", port: port))
        defer { connection.close() }
        var buffer = ByteBuffer()
        while buffer.firstIndex(of: UInt8(ascii: "\n")) == nil {
            try await connection.read(into: &buffer, deadline: .after(.seconds(5)))
        }
        let info = String(decoding: buffer.readableBytesView, as: UTF8.self)
        #expect(info.hasPrefix("INFO {"))
        #expect(info.contains("\"jetstream\":true"), "JetStream must be on: \(info)")
        buffer.clear()
        try await connection.write(ByteBuffer(string: "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n"))
        while !String(decoding: buffer.readableBytesView, as: UTF8.self).contains("PONG\r\n") {
            try await connection.read(into: &buffer, deadline: .after(.seconds(5)))
        }
    }
}
