import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

extension GoldenStream {
    /// The captured PostgreSQL conversations of Fixtures/pgwire/.
    static func pgwire() throws -> [GoldenStream] { try all(in: "pgwire", fileExtension: "pgw") }
}

extension LiveServer {
    /// INFRA_TEST_POSTGRES_<name>; a missing one fails the test.
    static func postgres(_ name: String) throws -> String { try require("INFRA_TEST_POSTGRES_" + name) }

    /// A TCP configuration for `user` (the SCRAM superuser by default).
    static func postgresConfiguration(user: String? = nil, password: String? = nil, sslMode: PostgresConfiguration.SSLMode = .disable) throws
        -> PostgresConfiguration
    {
        var config = PostgresConfiguration(
            hosts: [.init(try postgres("HOST"), port: Int(try postgres("PORT")) ?? 0)], user: try user ?? postgres("USER"),
            password: try password ?? postgres("PASSWORD"), database: try postgres("DATABASE"), sslMode: sslMode)
        config.applicationName = "pgwire-tests"
        return config
    }

    /// A connection to the test server.
    static func connectPostgres(_ configuration: PostgresConfiguration? = nil) async throws -> PostgresConnection {
        try await PostgresConnection.connect(try configuration ?? postgresConfiguration())
    }
}

/// Backend messages written the way the server writes them (the inverse codec lives here).
enum BackendEncoder {
    static func message(_ type: Character, _ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(UInt8(ascii: type.unicodeScalars.first!))
        let mark = out.beginLengthPrefix(Int32.self)
        body(&out)
        try! out.finishLengthPrefix(mark, includingPrefix: true)
        return out
    }

    static func cString(_ text: String, _ out: inout ByteBuffer) {
        try! out.writeCString(text)
    }

    /// A realistic response stream: startup tail, a row description, rows, errors, notices.
    static var sampleStream: ByteBuffer {
        var stream = ByteBuffer()
        stream.writeBuffer(message("R") { $0.writeInteger(Int32(0)) })
        stream.writeBuffer(message("S") { cString("server_version", &$0); cString("15.8", &$0) })
        stream.writeBuffer(message("K") { $0.writeInteger(Int32(4242)); $0.writeInteger(UInt32(0xDEADBEEF)) })
        stream.writeBuffer(message("Z") { $0.writeInteger(UInt8(ascii: "I")) })
        stream.writeBuffer(message("T") { out in
            out.writeInteger(Int16(2))
            for (name, type) in [("id", UInt32(23)), ("name", UInt32(25))] {
                cString(name, &out)
                out.writeInteger(UInt32(16384)); out.writeInteger(Int16(1)); out.writeInteger(type)
                out.writeInteger(Int16(-1)); out.writeInteger(Int32(-1)); out.writeInteger(Int16(1))
            }
        })
        for index in 0..<3 {
            stream.writeBuffer(message("D") { out in
                out.writeInteger(Int16(2))
                out.writeInteger(Int32(4)); out.writeInteger(Int32(index))
                if index == 1 { out.writeInteger(Int32(-1)) } else { out.writeInteger(Int32(5)); _ = out.writeString("row \(index)") }
            })
        }
        stream.writeBuffer(message("C") { cString("SELECT 3", &$0) })
        stream.writeBuffer(message("N") { out in
            for (code, value) in [("S", "NOTICE"), ("V", "NOTICE"), ("C", "00000"), ("M", "hello")] {
                out.writeInteger(UInt8(ascii: code.unicodeScalars.first!)); cString(value, &out)
            }
            out.writeInteger(UInt8(0))
        })
        stream.writeBuffer(message("E") { out in
            for (code, value) in [("S", "ERROR"), ("V", "ERROR"), ("C", "23505"), ("M", "duplicate key"), ("D", "Key (id)=(1) exists."), ("n", "t_pkey"), ("x", "ignored")] {
                out.writeInteger(UInt8(ascii: code.unicodeScalars.first!)); cString(value, &out)
            }
            out.writeInteger(UInt8(0))
        })
        stream.writeBuffer(message("A") { $0.writeInteger(Int32(77)); cString("jobs", &$0); cString("{\"id\":1}", &$0) })
        stream.writeBuffer(message("d") { _ = $0.writeString("1\tone\n") })
        stream.writeBuffer(message("Z") { $0.writeInteger(UInt8(ascii: "T")) })
        return stream
    }
}
