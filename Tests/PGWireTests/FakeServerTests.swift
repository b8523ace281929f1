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
}
