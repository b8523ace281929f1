import Foundation
import TestSupport
import Testing
import Transport

@Suite("Live NATS", .enabled(if: LiveServer.nats.isAvailable))
struct LiveNATSTransportTests {
    @Test func infoFirstThenPingPong() async throws {
        let url = try LiveServer.require("INFRA_TEST_NATS_URL")
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
