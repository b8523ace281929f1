import Foundation
import TestSupport
import Testing
import Transport

// The transport against the real servers that `make test` starts. Outside CI these skip when the
// servers are not running; in CI (CI=true) a missing server fails them.

@Suite("Live PostgreSQL", .enabled(if: LiveServer.postgres.isAvailable))
struct LivePostgreSQLTransportTests {
    /// PostgreSQL's SSLRequest: length 8, code 80877103.
    private var sslRequest: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(8))
        buffer.writeInteger(Int32(80_877_103))
        return buffer
    }

    @Test func sslRequestThenVerifiedTLS() async throws {
        let port = try #require(Int(try LiveServer.require("INFRA_TEST_POSTGRES_PORT")))
        let caFile = try LiveServer.require("INFRA_TEST_POSTGRES_CA_FILE")
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
        let port = try LiveServer.require("INFRA_TEST_POSTGRES_PORT")
        let directory = try LiveServer.require("INFRA_TEST_POSTGRES_SOCKET_DIR")
        let connection = try await Connection.connect(to: .unix(path: "\(directory)/.s.PGSQL.\(port)"))
        defer { connection.close() }
        try await connection.write(sslRequest)
        var reply = ByteBuffer()
        try await readExactly(1, from: connection, into: &reply)
        #expect(reply.readInteger(as: UInt8.self) == UInt8(ascii: "N"))
    }
}
