import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import Testing
import Transport

@testable import PGWire

@Suite("Live PostgreSQL: connecting", .enabled(if: LiveServer.postgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveConnectTests {
    @Test func scramOverTCPKeepsTheSessionsParametersAndKey() async throws {
        let connection = try await LiveServer.connectPostgres()
        defer { connection.close() }
        #expect(connection.parameter("server_version") != nil)
        #expect(connection.parameter("client_encoding") == "UTF8")
        #expect(connection.parameter("application_name") == "pgwire-tests")
        #expect(connection.backendKey != nil)
        #expect(connection.transactionStatus == .idle)
        let method = try await connection.simpleQuery("SELECT 1")
        #expect(method.first?.rows.count == 1)
    }

    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func theLifecycleIsLoggedToTheCallersLoggerWithEndpointAndIdNeverThePassword() async throws {
        let records = RecordingLogHandler.Store()
        var config = try LiveServer.postgresConfiguration(sslMode: .require)
        config.logger = records.logger()
        let connection = try await PostgresConnection.connect(config)
        connection.close()
        let connected = try #require(records.all.first { $0.message == "connected" })
        #expect(connected.level == .info)
        #expect(connected.metadata["authentication"]?.hasPrefix("SCRAM-SHA-256") == true, "\(connected.metadata)")
        #expect(connected.metadata["tls"] == "true")
        #expect(connected.metadata["postgres.endpoint"] == "\(config.hosts[0])")
        #expect(connected.metadata["postgres.connection"] != nil)
        #expect(records.all.contains { $0.message == "connection closed" })
        let password = try #require(config.password)
        #expect(!records.all.contains { $0.text.contains(password) })
        config.password = "wrong-password"
        _ = await #expect(throws: PostgresError.self) { try await PostgresConnection.connect(config) }
        #expect(records.all.contains { $0.level == .warning && $0.message == "could not connect" })
        #expect(!records.all.contains { $0.text.contains("wrong-password") })
    }

    @Test func scramOverTheUnixSocket() async throws {
        var config = try LiveServer.postgresConfiguration()
        config.hosts = [.init(try LiveServer.postgres("SOCKET_DIR"), port: config.hosts[0].port)]
        config.sslMode = .require  // ignored on a Unix socket, as libpq does
        let connection = try await LiveServer.connectPostgres(config)
        defer { connection.close() }
        #expect(!connection.isTLS)
        _ = try await connection.simpleQuery("SELECT 1")
    }

    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func md5CleartextAndTrustUsersWithAndWithoutTLS() async throws {
        for (user, password) in [("MD5_USER", "MD5_PASSWORD"), ("CLEARTEXT_USER", "CLEARTEXT_PASSWORD"), ("USER", "PASSWORD")] {
            for mode in [PostgresConfiguration.SSLMode.disable, .require] {
                let config = try LiveServer.postgresConfiguration(
                    user: LiveServer.postgres(user), password: LiveServer.postgres(password), sslMode: mode)
                let connection = try await LiveServer.connectPostgres(config)
                #expect(connection.isTLS == (mode == .require))
                let rows = try await connection.simpleQuery("SELECT current_user")
                #expect(rows.first?.rows.first.map { try? $0.decode(String.self, column: 0) } == (try LiveServer.postgres(user)))
                connection.close()
            }
        }
        var trust = try LiveServer.postgresConfiguration(user: LiveServer.postgres("TRUST_USER"))
        trust.password = nil
        let connection = try await LiveServer.connectPostgres(trust)
        _ = try await connection.simpleQuery("SELECT 1")
        connection.close()
    }

    @Test func aWrongPasswordIsAnAuthenticationErrorWithTheServersSQLStateAndNoPassword() async throws {
        let config = try LiveServer.postgresConfiguration(password: "not-the-password")
        do {
            _ = try await LiveServer.connectPostgres(config)
            Issue.record("connected with a wrong password")
        } catch let error as PostgresError {
            #expect(error.kind == .authentication)
            #expect(error.sqlState == .invalidPassword)
            #expect(!"\(error)".contains("not-the-password"))
        }
        // No password at all, for a SCRAM user.
        var none = try LiveServer.postgresConfiguration()
        none.password = nil
        await #expect(throws: PostgresError.self) { _ = try await LiveServer.connectPostgres(none) }
    }

    @Test func channelBindingRequireRefusesMD5AndCleartextAndPlaintextConnections() async throws {
        var md5 = try LiveServer.postgresConfiguration(user: LiveServer.postgres("MD5_USER"), password: LiveServer.postgres("MD5_PASSWORD"))
        md5.channelBinding = .require
        await #expect(throws: PostgresError.self) { _ = try await LiveServer.connectPostgres(md5) }
        var plain = try LiveServer.postgresConfiguration()
        plain.channelBinding = .require
        do {
            _ = try await LiveServer.connectPostgres(plain)
            Issue.record("channel binding without TLS")
        } catch let error as PostgresError {
            #expect(error.kind == .authentication)
        }
    }

    /// A role whose pg_hba rules reject it without TLS and take it with TLS: `allow` tries
    /// without TLS first, is refused, and retries with it; `disable` is refused with the
    /// server's reason; `prefer` takes TLS at once.
    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func sslmodeAllowRetriesWithTLSWhenTheServerAcceptsOnlyTLS() async throws {
        let user = try LiveServer.postgres("TLS_ONLY_USER")
        let password = try LiveServer.postgres("TLS_ONLY_PASSWORD")
        let allowed = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: password, sslMode: .allow))
        defer { allowed.close() }
        #expect(allowed.isTLS)
        let ssl = try await allowed.simpleQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        #expect(ssl.first?.rows.first.map { try? $0.decode(Bool.self, column: 0) } == true)
        do {
            _ = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: password, sslMode: .disable))
            Issue.record("a TLS-only role logged in without TLS")
        } catch let error as PostgresError {
            #expect(error.kind == .authentication && error.message.contains("pg_hba.conf rejects"), "\(error)")
        }
        let preferred = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: password, sslMode: .prefer))
        #expect(preferred.isTLS)
        preferred.close()
        // A role that may log in without TLS gets a plain session under allow.
        let plain = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(sslMode: .allow))
        #expect(!plain.isTLS)
        plain.close()
    }

    /// sslnegotiation=direct through a TLS-terminating proxy (as PostgreSQL 17+ takes it): the
    /// ClientHello comes first with ALPN `postgresql`, the certificate is verified, and the
    /// session behind it works. The proxy refuses a client that starts with an SSLRequest and a
    /// TLS client that offers another ALPN protocol, and the client refuses a server that accepts
    /// direct TLS without choosing `postgresql`.
    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func directTLSHandshakesWithALPNPostgresqlAndVerifiesTheServer() async throws {
        let authority = try LiveServer.postgres("CA_FILE")
        let directory = (authority as NSString).deletingLastPathComponent
        let proxy = try DirectTLSProxy(
            certificate: directory + "/server.pem", key: directory + "/server.key", backendPort: Int(try LiveServer.postgres("PORT")) ?? 0)
        defer { proxy.stop() }
        var config = try LiveServer.postgresConfiguration(sslMode: .verifyFull)
        config.hosts = [.init("127.0.0.1", port: proxy.port)]
        config.sslRootCertificate = authority
        config.sslNegotiation = .direct
        // The server behind the proxy sees plain TCP: no SCRAM-PLUS (channel binding) there.
        config.channelBinding = .disable
        let connection = try await LiveServer.connectPostgres(config)
        defer { connection.close() }
        #expect(connection.isTLS)
        #expect(connection.transport.negotiatedApplicationProtocol == "postgresql")
        let answer = try await connection.execute("SELECT 40 + 2").rows.first?.decode(Int.self)
        #expect(answer == 42)
        #expect(proxy.handshakes == 1)

        // The same proxy through a connection string, and the refusals.
        let url = "postgresql://\(config.user)@127.0.0.1:\(proxy.port)/\(config.effectiveDatabase)?sslmode=verify-full&sslnegotiation=direct"
            + "&channel_binding=disable&sslrootcert=\(authority)"
        var parsed = try PostgresConfiguration(connectionString: url)
        parsed.password = config.password
        let second = try await LiveServer.connectPostgres(parsed)
        second.close()
        #expect(proxy.handshakes == 2)

        var negotiated = config
        negotiated.sslNegotiation = .postgres
        await #expect(throws: PostgresError.self) { _ = try await LiveServer.connectPostgres(negotiated) }
        let transport = try await Connection.connect(to: .tcp(host: "127.0.0.1", port: proxy.port))
        defer { transport.close() }
        let other = try TLSContext(configuration: TLSConfiguration(trustRoots: .file(authority), verification: .full, applicationProtocols: ["h2"]))
        await #expect(throws: (any Error).self) { try await transport.startTLS(other, serverName: "localhost") }
        for _ in 0..<200 where proxy.refusals < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(proxy.refusals == 2)
        #expect(proxy.handshakes == 2)
    }

    /// A TLS server that takes a direct connection but chooses no ALPN protocol is not PostgreSQL.
    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func directTLSWithoutALPNFromTheServerIsRefused() async throws {
        let authority = try LiveServer.postgres("CA_FILE")
        let directory = (authority as NSString).deletingLastPathComponent
        let proxy = try DirectTLSProxy(
            certificate: directory + "/server.pem", key: directory + "/server.key", backendPort: Int(try LiveServer.postgres("PORT")) ?? 0,
            selectsALPN: false)
        defer { proxy.stop() }
        var config = try LiveServer.postgresConfiguration(sslMode: .verifyFull)
        config.hosts = [.init("127.0.0.1", port: proxy.port)]
        config.sslRootCertificate = authority
        config.sslNegotiation = .direct
        config.channelBinding = .disable
        do {
            _ = try await LiveServer.connectPostgres(config)
            Issue.record("connected to a direct TLS server that chose no ALPN protocol")
        } catch let error as PostgresError {
            #expect(error.kind == .tls && error.message.contains("without choosing the ALPN protocol \"postgresql\""), "\(error)")
        }
    }

    @Test(.enabled(if: !LiveServer.isPostgres18Pass, "needs TLS, which the PostgreSQL 18 build lacks"))
    func tlsVerifyFullWithTheCARequiresSCRAMPlusAndRequireSkipsVerification() async throws {
        var config = try LiveServer.postgresConfiguration(sslMode: .verifyFull)
        config.sslRootCertificate = try LiveServer.postgres("CA_FILE")
        config.channelBinding = .require
        let connection = try await LiveServer.connectPostgres(config)
        #expect(connection.isTLS)
        let ssl = try await connection.simpleQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        #expect(ssl.first?.rows.first.map { try? $0.decode(Bool.self, column: 0) } == true)
        connection.close()

        let required = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(sslMode: .require))
        #expect(required.isTLS)
        required.close()

        let preferred = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(sslMode: .prefer))
        #expect(preferred.isTLS)
        preferred.close()

        // verify-full against the system store: the test CA is not trusted there.
        let untrusted = try LiveServer.postgresConfiguration(sslMode: .verifyFull)
        do {
            _ = try await LiveServer.connectPostgres(untrusted)
            Issue.record("an untrusted certificate was accepted")
        } catch let error as PostgresError {
            #expect(error.kind == .tls)
        }
    }

    @Test func aPasswordThatNeedsSASLprepWorksAsPostgreSQLStoredIt() async throws {
        let admin = try await LiveServer.connectPostgres()
        defer { admin.close() }
        let user = "pgwire_saslprep_\(UInt32.random(in: 0...UInt32.max))"
        let password = "p\u{00AA}ss\u{2168}w\u{00A0}rd\u{00AD}"
        _ = try await admin.simpleQuery("DROP ROLE IF EXISTS \(user)")
        _ = try await admin.simpleQuery("CREATE ROLE \(user) LOGIN PASSWORD '\(password)'")
        let connection = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: password))
        _ = try await connection.simpleQuery("SELECT 1")
        connection.close()
        // The server hashed the prepared form, so that form logs in too, and a near miss does not.
        let prepared = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: "passIXw rd"))
        prepared.close()
        await #expect(throws: PostgresError.self) {
            _ = try await LiveServer.connectPostgres(try LiveServer.postgresConfiguration(user: user, password: "passIXwrd"))
        }
        _ = try await admin.simpleQuery("DROP ROLE \(user)")
    }

    @Test func anUnknownProtocolOptionDrawsNegotiateProtocolVersionAndTheSessionGoesOn() async throws {
        var config = try LiveServer.postgresConfiguration()
        config.runtimeParameters = [("_pq_.pgwire_test", "on")]
        let connection = try await LiveServer.connectPostgres(config)
        defer { connection.close() }
        #expect(connection.protocolNegotiation?.unrecognizedOptions == ["_pq_.pgwire_test"])
        #expect(connection.protocolNegotiation?.newestMinorVersion == 0)
        _ = try await connection.simpleQuery("SELECT 1")
    }

    @Test func anUnreachableHostIsAConnectionErrorNamingItSeveralHostsAreTriedInOrder() async throws {
        var config = try LiveServer.postgresConfiguration()
        let good = config.hosts[0]
        config.hosts = [.init("127.0.0.1", port: 1), good]
        let connection = try await LiveServer.connectPostgres(config)
        connection.close()
        config.hosts = [.init("127.0.0.1", port: 1)]
        do {
            _ = try await LiveServer.connectPostgres(config)
            Issue.record("connected to port 1")
        } catch let error as PostgresError {
            #expect(error.kind == .connection)
            #expect(error.message.contains("127.0.0.1:1"))
        }
    }
}
