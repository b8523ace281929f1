import Testing
import Transport

@testable import PGWire

@Suite("PostgreSQL client against scripted servers")
struct FakeServerTests {
    /// A server that reads `expect` bytes, then writes `answer`, then holds the connection open.
    func server(expect: Int, answer: [UInt8]) throws -> (Listener, Task<Void, any Error>) {
        let listener = try Listener.bind()
        let task = Task {
            let peer = try await listener.accept()
            var received = ByteBuffer()
            while received.readableBytes < expect { _ = try await peer.read(into: &received, deadline: .after(.seconds(5))) }
            try await peer.write(ByteBuffer(bytes: answer))
            try await Task.sleep(for: .seconds(2))
            peer.close()
        }
        return (listener, task)
    }

    /// Connects to a server that answers the SSLRequest with `answer`; returns the error.
    func connectError(sslAnswer answer: [UInt8], mode: PostgresConfiguration.SSLMode) async throws -> PostgresError? {
        let (listener, task) = try server(expect: 8, answer: answer)
        defer {
            listener.close()
            task.cancel()
        }
        let config = PostgresConfiguration(hosts: [.init("127.0.0.1", port: listener.endpoint.port ?? 0)], user: "u", sslMode: mode)
        do {
            _ = try await PostgresConnection.connect(config)
            return nil
        } catch {
            return error
        }
    }

    @Test func bytesInjectedBetweenTheServersSAndTheTLSHandshakeAreRefused() async throws {
        // 'S' followed by a forged AuthenticationOk, sent in the clear.
        let error = try await connectError(sslAnswer: [UInt8(ascii: "S"), UInt8(ascii: "R"), 0, 0, 0, 8, 0, 0, 0, 0], mode: .require)
        #expect(error?.kind == .protocolViolation)
    }

    @Test func aServerThatRefusesTLSFailsSslmodeRequire() async throws {
        let error = try await connectError(sslAnswer: [UInt8(ascii: "N")], mode: .require)
        #expect(error?.kind == .tls)
    }

    @Test func aServerThatAsksForAnUnsupportedMethodOrAcceptsWithoutFinishingSCRAMIsRefused() async throws {
        // AuthenticationGSS.
        var gss = ByteBuffer()
        gss.writeInteger(UInt8(ascii: "R")); gss.writeInteger(Int32(8)); gss.writeInteger(Int32(7))
        let (listener, task) = try server(expect: 20, answer: Array(gss.readableBytesView))
        defer {
            listener.close()
            task.cancel()
        }
        let config = PostgresConfiguration(hosts: [.init("127.0.0.1", port: listener.endpoint.port ?? 0)], user: "u", password: "p", sslMode: .disable)
        do {
            _ = try await PostgresConnection.connect(config)
            Issue.record("connected")
        } catch {
            #expect(error.kind == .authentication)
            #expect(error.message.contains("GSSAPI"))
        }

        // The state machine alone: SASL started, then AuthenticationOk without SASLFinal.
        var machine = ConnectionStateMachine(user: "u", password: "p", channelBinding: .prefer, serverEndPoint: nil, scramNonce: "abc")
        guard case .write = machine.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256"]))) else {
            Issue.record("no SASLInitialResponse")
            return
        }
        guard case .fail(let error) = machine.received(.authentication(.ok)) else {
            Issue.record("accepted an unproven server")
            return
        }
        #expect(error.kind == .authentication)
    }

    @Test func scramPlusOfferedWithoutTLSIsRefusedSayingChannelBindingNeedsTLS() {
        var machine = ConnectionStateMachine(user: "u", password: "p", channelBinding: .prefer, serverEndPoint: nil)
        guard case .fail(let error) = machine.received(.authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS"]))) else {
            Issue.record("SCRAM-SHA-256-PLUS without TLS was not refused")
            return
        }
        #expect(error.kind == .authentication)
        #expect(error.message.contains("channel binding needs TLS"), "\(error.message)")
        #expect(error.message.contains("without TLS"))
    }

    @Test func aFatalErrorWhileARequestRunsEndsTheSessionWithTheServersReason() {
        var machine = ConnectionStateMachine(user: "u", password: nil, channelBinding: .prefer, serverEndPoint: nil)
        _ = machine.received(.authentication(.ok))
        _ = machine.received(.readyForQuery(.idle))
        machine.enqueue(1)
        var fields: [PostgresDiagnostics.Field: String] = [:]
        fields[.severity] = "FATAL"
        fields[.sqlState] = "57P01"
        fields[.message] = "terminating connection due to administrator command"
        guard case .fail(let error) = machine.received(.errorResponse(PostgresDiagnostics(fields: fields))) else {
            Issue.record("a FATAL error did not end the session")
            return
        }
        #expect(error.kind == .connection)
        #expect(error.sqlState?.rawValue == "57P01")
        var plain = ConnectionStateMachine(user: "u", password: nil, channelBinding: .prefer, serverEndPoint: nil)
        _ = plain.received(.authentication(.ok))
        _ = plain.received(.readyForQuery(.idle))
        plain.enqueue(1)
        fields[.severity] = "ERROR"
        fields[.sqlState] = "42601"
        guard case .deliver(1, .error) = plain.received(.errorResponse(PostgresDiagnostics(fields: fields))) else {
            Issue.record("an ERROR is the request's, not the session's")
            return
        }
    }

    @Test func aWithdrawnRequestKeepsOnlyItsPreparationAndOneSyncPerCycle() throws {
        var messages = ByteBuffer()
        try FrontendMessage.close(.statement, name: "pgwire_1", into: &messages)
        try FrontendMessage.parse(statement: "pgwire_2", sql: "SELECT $1", parameterTypes: [.int4], into: &messages)
        var parameters = ByteBuffer()
        parameters.writeInteger(Int32(4))
        parameters.writeInteger(Int32(1))
        try FrontendMessage.bind(
            portal: "", statement: "pgwire_2", parameterCount: 1, parameterFormats: [true], parameters: parameters, binaryResults: true,
            into: &messages)
        try FrontendMessage.execute(portal: "", maximumRows: 0, into: &messages)
        FrontendMessage.sync(into: &messages)
        try FrontendMessage.query("SELECT 1", into: &messages)
        var kept = ByteBuffer()
        FrontendMessage.keepingOnlyPreparation(messages, into: &kept)
        var types: [UInt8] = []
        var cursor = kept
        while let type = cursor.readInteger(as: UInt8.self), let length = cursor.readInteger(as: Int32.self) {
            types.append(type)
            _ = cursor.readSlice(count: Int(length) - 4)
        }
        #expect(types == Array("CPSS".utf8), "Close and Parse kept; Bind and Execute dropped; the Sync and the Query each become a Sync")
    }
}
