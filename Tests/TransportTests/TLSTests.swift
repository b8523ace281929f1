import Foundation
import Testing
@testable import Transport

#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS client")
struct TLSTests {
    let fixture: TLSFixture

    init() async throws {
        fixture = try await TLSFixture.shared()
    }

    private func verifiedContext() throws -> TLSContext {
        try TLSContext(configuration: TLSConfiguration(trustRoots: .file(fixture.caFile)))
    }

    /// Connects to the TLS echo server at 127.0.0.1, verifying with the fixture's CA by default.
    private func connect(to server: TLSEchoServer, serverName: String? = "localhost", context: TLSContext? = nil) async throws -> Connection {
        try await Connection.connect(
            to: .tcp(host: "127.0.0.1", port: server.port),
            options: ConnectOptions(tls: try context ?? verifiedContext(), serverName: serverName))
    }

    @Test func trustedCertificateAndMatchingHostName() async throws {
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        let connection = try await connect(to: server)
        defer { connection.close() }
        #expect(connection.isTLS)
        #expect(try await echo(connection, "over TLS") == "over TLS")
        #expect(server.receivedServerNames == ["localhost"], "SNI carries the host name")
        // A payload larger than one TLS record both ways.
        let large = String(repeating: "0123456789abcdef", count: 8192)
        #expect(try await echo(connection, large) == large)
    }

    @Test func ipAddressIsVerifiedAgainstTheCertificatesIPEntry() async throws {
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        let connection = try await connect(to: server, serverName: nil)
        defer { connection.close() }
        #expect(try await echo(connection, "ip") == "ip")
        #expect(server.receivedServerNames == [nil], "no SNI for an IP address (RFC 6066)")
    }

    @Test func channelBindingUsesTheCertificatesSignatureDigest() async throws {
        // The server certificate is signed with ECDSA-SHA384, so RFC 5929 asks for its SHA-384 hash.
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        let connection = try await connect(to: server)
        defer { connection.close() }
        let binding = try #require(connection.tlsServerEndPoint)
        #expect(binding.count == 48)
        let expected = try await fixture.serverCertificateHash("sha384")
        #expect(binding == expected)
    }

    @Test func untrustedCertificateIsRefused() async throws {
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        for roots in [TLSConfiguration.TrustRoots.system, .file(fixture.otherCAFile)] {
            let context = try TLSContext(configuration: TLSConfiguration(trustRoots: roots))
            let error = await #expect(throws: TransportError.self) {
                try await connect(to: server, context: context)
            }
            #expect(error?.kind == .tlsCertificateUntrusted)
            #expect(error?.description.contains("certificate verification failed") == true, "\(String(describing: error))")
            #expect(error?.description.contains("local issuer") == true, "\(String(describing: error))")
        }
    }

    @Test func wrongHostNameIsRefused() async throws {
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        let context = try verifiedContext()
        let error = await #expect(throws: TransportError.self) {
            try await connect(to: server, serverName: "db.example.com", context: context)
        }
        #expect(error?.kind == .tlsHostnameMismatch)
        #expect(error?.description.contains("db.example.com") == true, "\(String(describing: error))")
    }

    @Test func chainOnlyVerificationAcceptsAnotherName() async throws {
        let server = try TLSEchoServer(fixture: fixture)
        defer { server.stop() }
        let context = try TLSContext(configuration: TLSConfiguration(trustRoots: .file(fixture.caFile), verification: .chainOnly))
        let connection = try await connect(to: server, serverName: "db.example.com", context: context)
        defer { connection.close() }
        #expect(try await echo(connection, "verify-ca") == "verify-ca")
    }

    @Test func clientCertificateWhenTheServerRequiresOne() async throws {
        let server = try TLSEchoServer(fixture: fixture, requireClientCertificate: true)
        defer { server.stop() }
        let endpoint = Endpoint.tcp(host: "127.0.0.1", port: server.port)
        let withCertificate = try TLSContext(configuration: TLSConfiguration(
            trustRoots: .file(fixture.caFile),
            clientCertificate: .init(certificateChainFile: fixture.clientCertificate, privateKeyFile: fixture.clientKey)))
        let connection = try await Connection.connect(to: endpoint, options: ConnectOptions(tls: withCertificate, serverName: "localhost"))
        defer { connection.close() }
        #expect(try await echo(connection, "mutual") == "mutual")

        // Without one, TLS 1.3 reports the server's refusal on the first read.
        let without = try TLSContext(configuration: TLSConfiguration(trustRoots: .file(fixture.caFile)))
        let error = await #expect(throws: TransportError.self) {
            let refused = try await Connection.connect(to: endpoint, options: ConnectOptions(tls: without, serverName: "localhost"))
            defer { refused.close() }
            _ = try await echo(refused, "anonymous")
        }
        #expect([.tlsFailure, .endOfStream, .connectionReset].contains(error?.kind), "\(String(describing: error))")
    }

    @Test func startTLSOnAnAlreadyConnectedSocket() async throws {
        let server = try TLSEchoServer(fixture: fixture, expectsStartTLSLine: true)
        defer { server.stop() }
        let connection = try await Connection.connect(to: .tcp(host: "127.0.0.1", port: server.port))
        defer { connection.close() }
        try await connection.write(ByteBuffer(string: "STARTTLS\n"))
        var reply = ByteBuffer()
        try await readExactly(3, from: connection, into: &reply)
        #expect(reply == ByteBuffer(string: "GO\n"))
        #expect(!connection.isTLS)
        let context = try verifiedContext()
        try await connection.startTLS(context, serverName: "localhost")
        #expect(connection.isTLS)
        #expect(try await echo(connection, "upgraded") == "upgraded")
    }

    @Test func handshakeWithAPlaintextServerFailsCleanly() async throws {
        let server = try EchoServer.start()
        defer { server.stop() }
        let context = try TLSContext(configuration: TLSConfiguration(trustRoots: .file(fixture.caFile), verification: .none))
        let error = await #expect(throws: TransportError.self) {
            try await Connection.connect(to: server.endpoint, options: ConnectOptions(timeout: .seconds(2), tls: context))
        }
        #expect(error?.kind == .tlsFailure || error?.kind == .timedOut, "\(String(describing: error))")
    }

    @Test func missingCAFileIsAConfigurationError() throws {
        let error = #expect(throws: TransportError.self) {
            try TLSContext(configuration: TLSConfiguration(trustRoots: .file("/nonexistent/ca.pem")))
        }
        #expect(error?.kind == .tlsConfiguration)
        #expect(error?.description.contains("/nonexistent/ca.pem") == true)
    }

    @Test func fullVerificationNeedsAServerName() async throws {
        let listener = try Listener.bind(unixPath: NSTemporaryDirectory() + "tls-\(UInt32.random(in: 0...UInt32.max)).sock")
        defer { listener.close() }
        let context = try TLSContext()
        let error = await #expect(throws: TransportError.self) {
            try await Connection.connect(to: listener.endpoint, options: ConnectOptions(tls: context))
        }
        #expect(error?.kind == .tlsConfiguration)
    }
}
