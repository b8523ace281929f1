import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Transport

@testable import PGWire

/// The PostgreSQL server `make test` starts, found through INFRA_TEST_POSTGRES_* variables.
enum LivePostgres {
    static func variable(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment["INFRA_TEST_POSTGRES_" + name], !value.isEmpty else { return nil }
        return value
    }

    /// Outside CI a missing server skips the suite; in CI the suite runs and fails.
    static var isAvailable: Bool { variable("PORT") != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String { "INFRA_TEST_POSTGRES_\(name) is not set: start the servers with `make test`" }
    }

    static func require(_ name: String) throws -> String {
        guard let value = variable(name) else { throw Missing(name: name) }
        return value
    }

    /// A TCP configuration for `user` (the SCRAM superuser by default).
    static func configuration(user: String? = nil, password: String? = nil, sslMode: PostgresConfiguration.SSLMode = .disable) throws
        -> PostgresConfiguration
    {
        var config = PostgresConfiguration(
            hosts: [.init(try require("HOST"), port: Int(try require("PORT")) ?? 0)], user: try user ?? require("USER"),
            password: try password ?? require("PASSWORD"), database: try require("DATABASE"), sslMode: sslMode)
        config.applicationName = "pgwire-tests"
        return config
    }

    static func connect(_ configuration: PostgresConfiguration? = nil) async throws -> PostgresConnection {
        try await PostgresConnection.connect(try configuration ?? Self.configuration())
    }
}

@Suite("Live PostgreSQL: connecting", .enabled(if: LivePostgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveConnectTests {
    @Test("SCRAM-SHA-256 over TCP; the session's parameters and key are kept")
    func scram() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        #expect(connection.parameter("server_version") != nil)
        #expect(connection.parameter("client_encoding") == "UTF8")
        #expect(connection.parameter("application_name") == "pgwire-tests")
        #expect(connection.backendKey != nil)
        #expect(connection.transactionStatus == .idle)
        let method = try await connection.simpleQuery("SELECT 1")
        #expect(method.first?.rows.count == 1)
    }

    @Test("SCRAM over the Unix socket")
    func unixSocket() async throws {
        var config = try LivePostgres.configuration()
        config.hosts = [.init(try LivePostgres.require("SOCKET_DIR"), port: config.hosts[0].port)]
        config.sslMode = .require  // ignored on a Unix socket, as libpq does
        let connection = try await LivePostgres.connect(config)
        defer { connection.close() }
        #expect(!connection.isTLS)
        _ = try await connection.simpleQuery("SELECT 1")
    }

    @Test("md5, cleartext and trust users, with and without TLS")
    func otherMethods() async throws {
        for (user, password) in [("MD5_USER", "MD5_PASSWORD"), ("CLEARTEXT_USER", "CLEARTEXT_PASSWORD"), ("USER", "PASSWORD")] {
            for mode in [PostgresConfiguration.SSLMode.disable, .require] {
                let config = try LivePostgres.configuration(
                    user: LivePostgres.require(user), password: LivePostgres.require(password), sslMode: mode)
                let connection = try await LivePostgres.connect(config)
                #expect(connection.isTLS == (mode == .require))
                let rows = try await connection.simpleQuery("SELECT current_user")
                #expect(rows.first?.rows.first.map { try? $0.decode(String.self, column: 0) } == (try LivePostgres.require(user)))
                connection.close()
            }
        }
        var trust = try LivePostgres.configuration(user: LivePostgres.require("TRUST_USER"))
        trust.password = nil
        let connection = try await LivePostgres.connect(trust)
        _ = try await connection.simpleQuery("SELECT 1")
        connection.close()
    }

    @Test("a wrong password is an authentication error with the server's SQLSTATE, and no password in it")
    func wrongPassword() async throws {
        let config = try LivePostgres.configuration(password: "not-the-password")
        do {
            _ = try await LivePostgres.connect(config)
            Issue.record("connected with a wrong password")
        } catch let error as PostgresError {
            #expect(error.kind == .authentication)
            #expect(error.sqlState == .invalidPassword)
            #expect(!"\(error)".contains("not-the-password"))
        }
        // No password at all, for a SCRAM user.
        var none = try LivePostgres.configuration()
        none.password = nil
        await #expect(throws: PostgresError.self) { _ = try await LivePostgres.connect(none) }
    }

    @Test("channel_binding=require refuses MD5 and cleartext, and plaintext connections")
    func channelBindingRequired() async throws {
        var md5 = try LivePostgres.configuration(user: LivePostgres.require("MD5_USER"), password: LivePostgres.require("MD5_PASSWORD"))
        md5.channelBinding = .require
        await #expect(throws: PostgresError.self) { _ = try await LivePostgres.connect(md5) }
        var plain = try LivePostgres.configuration()
        plain.channelBinding = .require
        do {
            _ = try await LivePostgres.connect(plain)
            Issue.record("channel binding without TLS")
        } catch let error as PostgresError {
            #expect(error.kind == .authentication)
        }
    }

    @Test("TLS: verify-full with the CA, SCRAM-SHA-256-PLUS required; require without verification")
    func tls() async throws {
        var config = try LivePostgres.configuration(sslMode: .verifyFull)
        config.sslRootCertificate = try LivePostgres.require("CA_FILE")
        config.channelBinding = .require
        let connection = try await LivePostgres.connect(config)
        #expect(connection.isTLS)
        let ssl = try await connection.simpleQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        #expect(ssl.first?.rows.first.map { try? $0.decode(Bool.self, column: 0) } == true)
        connection.close()

        let required = try await LivePostgres.connect(try LivePostgres.configuration(sslMode: .require))
        #expect(required.isTLS)
        required.close()

        let preferred = try await LivePostgres.connect(try LivePostgres.configuration(sslMode: .prefer))
        #expect(preferred.isTLS)
        preferred.close()

        // verify-full against the system store: the test CA is not trusted there.
        let untrusted = try LivePostgres.configuration(sslMode: .verifyFull)
        do {
            _ = try await LivePostgres.connect(untrusted)
            Issue.record("an untrusted certificate was accepted")
        } catch let error as PostgresError {
            #expect(error.kind == .tls)
        }
    }

    @Test("a password that needs SASLprep works as PostgreSQL stored it")
    func saslprepPassword() async throws {
        let admin = try await LivePostgres.connect()
        defer { admin.close() }
        let user = "pgwire_saslprep_\(UInt32.random(in: 0...UInt32.max))"
        let password = "p\u{00AA}ss\u{2168}w\u{00A0}rd\u{00AD}"
        _ = try await admin.simpleQuery("DROP ROLE IF EXISTS \(user)")
        _ = try await admin.simpleQuery("CREATE ROLE \(user) LOGIN PASSWORD '\(password)'")
        let connection = try await LivePostgres.connect(try LivePostgres.configuration(user: user, password: password))
        _ = try await connection.simpleQuery("SELECT 1")
        connection.close()
        // The server hashed the prepared form, so that form logs in too, and a near miss does not.
        let prepared = try await LivePostgres.connect(try LivePostgres.configuration(user: user, password: "passIXw rd"))
        prepared.close()
        await #expect(throws: PostgresError.self) {
            _ = try await LivePostgres.connect(try LivePostgres.configuration(user: user, password: "passIXwrd"))
        }
        _ = try await admin.simpleQuery("DROP ROLE \(user)")
    }

    @Test("an unknown protocol option draws NegotiateProtocolVersion, and the session goes on")
    func negotiation() async throws {
        var config = try LivePostgres.configuration()
        config.runtimeParameters = [("_pq_.pgwire_test", "on")]
        let connection = try await LivePostgres.connect(config)
        defer { connection.close() }
        #expect(connection.protocolNegotiation?.unrecognizedOptions == ["_pq_.pgwire_test"])
        #expect(connection.protocolNegotiation?.newestMinorVersion == 0)
        _ = try await connection.simpleQuery("SELECT 1")
    }

    @Test("an unreachable host is a connection error naming it; several hosts are tried in order")
    func hosts() async throws {
        var config = try LivePostgres.configuration()
        let good = config.hosts[0]
        config.hosts = [.init("127.0.0.1", port: 1), good]
        let connection = try await LivePostgres.connect(config)
        connection.close()
        config.hosts = [.init("127.0.0.1", port: 1)]
        do {
            _ = try await LivePostgres.connect(config)
            Issue.record("connected to port 1")
        } catch let error as PostgresError {
            #expect(error.kind == .connection)
            #expect(error.message.contains("127.0.0.1:1"))
        }
    }
}

@Suite("Live PostgreSQL: queries", .enabled(if: LivePostgres.isAvailable), .timeLimit(.minutes(1)))
struct LiveQueryTests {
    @Test("simple protocol: several statements, several results, an empty query")
    func simple() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        let results = try await connection.simpleQuery(
            "CREATE TEMP TABLE t (id int, name text); INSERT INTO t VALUES (1, 'a'), (2, NULL); SELECT * FROM t ORDER BY id;")
        #expect(results.map(\.commandTag) == ["CREATE TABLE", "INSERT 0 2", "SELECT 2"])
        #expect(try await connection.simpleQuery("").map(\.commandTag) == [""])
        let rows = results[2].rows
        #expect(try rows[0].decode(Int.self, column: 0) == 1)
        #expect(try rows[0].decode(String.self, column: "name") == "a")
        #expect(try rows[1].decode(String?.self, column: 1) == nil)
        #expect(results[1].affectedRows == 2)
    }

    @Test("extended protocol: parameters bound in binary, results decoded by position and name")
    func extended() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        let name = "O'Brien; DROP TABLE x"
        let id = UUID()
        let when = Date(timeIntervalSince1970: 1_700_000_000.25)
        let row = try await connection.execute(
            "SELECT \(42)::int4 AS answer, \(name)::text AS name, \(id) AS id, \(when) AS at, \(3.5) AS x, \(true) AS flag, \(Optional<Int>.none)::int8 AS nothing, 12345.678::numeric AS amount"
        ).rows[0]
        #expect(try row.decode(Int32.self, column: 0) == 42)
        #expect(try row.decode(String.self, column: "name") == name)
        #expect(try row.decode(UUID.self, column: "id") == id)
        #expect(try row.decode(Date.self, column: "at") == when)
        #expect(try row.decode(Double.self, column: "x") == 3.5)
        #expect(try row.decode(Bool.self, column: "flag"))
        #expect(try row.decode(Int?.self, column: "nothing") == nil)
        #expect(try row.decode(String.self, column: "amount") == "12345.678")
        let (answer, text) = try row.decode((Int, String).self)
        #expect(answer == 42 && text == name)

        // A decoding error names the column, its type and the Swift type.
        do {
            _ = try row.decode(Int.self, column: "name")
            Issue.record("decoded text into Int")
        } catch {
            #expect(error.description.contains("\"name\""))
            #expect(error.description.contains("text"))
            #expect(error.description.contains("Int"))
        }
    }

    @Test("an error affects only its own query; the session stays usable, in and out of transactions")
    func errors() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        do {
            _ = try await connection.execute("SELECT 1/0")
            Issue.record("division by zero succeeded")
        } catch {
            #expect(error.kind == .server)
            #expect(error.sqlState == .divisionByZero)
        }
        do {
            _ = try await connection.execute("SELECT * FROM no_such_table")
        } catch {
            #expect(error.sqlState == .undefinedTable)
            #expect(error.diagnostics?.position == 15)
        }
        #expect(try await connection.execute("SELECT \(7)::int8").rows[0].decode(Int.self, column: 0) == 7)

        _ = try await connection.simpleQuery("BEGIN")
        await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1/0") }
        #expect(connection.transactionStatus == .failed)
        _ = try await connection.simpleQuery("ROLLBACK")
        #expect(connection.transactionStatus == .idle)
        do {
            _ = try await connection.simpleQuery("SELECT 1; SELECT 1/0; SELECT 3")
        } catch {
            #expect(error.sqlState == .divisionByZero)
        }
        #expect(try await connection.simpleQuery("SELECT 2").count == 1)
    }

    @Test("concurrent callers are pipelined on one connection, each gets its own result")
    func pipelined() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        let writesBefore = connection.transport.writeSystemCallCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<20 {
                group.addTask {
                    for index in 0..<50 {
                        let value = task * 1000 + index
                        if index % 10 == 3 {
                            await #expect(throws: PostgresError.self) { try await connection.execute("SELECT 1/\(0)") }
                            continue
                        }
                        let result = try await connection.execute("SELECT \(value)::int8 + 1")
                        #expect(try result.rows[0].decode(Int.self, column: 0) == value + 1)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Each request's Parse/Bind/Describe/Execute/Sync leave in one write at most; concurrent
        // requests share writes while one is in progress.
        #expect(connection.transport.writeSystemCallCount - writesBefore <= 1000)
    }

    @Test(
        "a lone caller waits for its reply on its own thread; concurrent callers leave the thread to each other",
        .enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1, "inline waits need a second processor"))
    func inlineReadWaits() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        var before = Reactor.shared.inlineWaitCount
        for index in 0..<100 { _ = try await connection.execute("SELECT \(index)::int8") }
        let sequential = Reactor.shared.inlineWaitCount - before
        #expect(sequential >= 50, "only \(sequential) of 100 sequential queries waited inline")
        before = Reactor.shared.inlineWaitCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask { for index in 0..<200 { _ = try await connection.execute("SELECT \(index)::int8") } }
            }
            try await group.waitForAll()
        }
        let concurrent = Reactor.shared.inlineWaitCount - before
        #expect(concurrent <= 150, "\(concurrent) of 4,000 concurrent queries held a thread waiting inline")
    }

    @Test("a large result streams: rows arrive while the query runs, memory stays bounded")
    func streaming() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        let rows = try await connection.query("SELECT g, g::text, now() FROM generate_series(1, \(200_000)) g")
        var count = 0
        var sum = 0
        for try await row in rows {
            let (number, text, _) = try row.decode((Int, String, Date).self)
            #expect(text == String(number))
            sum += number
            count += 1
        }
        #expect(count == 200_000)
        #expect(sum == 200_000 * 200_001 / 2)
        // A sequence held half-read does not block the next query (its rows are buffered) …
        var held = try await connection.query("SELECT g FROM generate_series(1, 100000) g").makeAsyncIterator()
        _ = try await held.next()
        #expect(try await connection.execute("SELECT 5::int8").rows[0].decode(Int.self, column: 0) == 5)
        var rest = 0
        while try await held.next() != nil { rest += 1 }
        #expect(rest == 99_999)
        // … and one dropped half-read is discarded, the connection stays usable.
        do {
            var dropped = try await connection.query("SELECT g FROM generate_series(1, 100000) g").makeAsyncIterator()
            _ = try await dropped.next()
        }
        #expect(try await connection.execute("SELECT 6::int8").rows[0].decode(Int.self, column: 0) == 6)
    }

    @Test("the statement cache re-prepares after the table's columns change")
    func cachedPlanChange() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE shape (a int)")
        _ = try await connection.execute("INSERT INTO shape VALUES (\(Int32(1)))")
        #expect(try await connection.execute("SELECT * FROM shape").columns.count == 1)
        _ = try await connection.simpleQuery("ALTER TABLE shape ADD COLUMN b text")
        #expect(try await connection.execute("SELECT * FROM shape").columns.count == 2)
    }

    @Test("executeMany: atomic batches roll back on the first error; per-execution batches keep the rest")
    func batches() async throws {
        let connection = try await LivePostgres.connect()
        defer { connection.close() }
        _ = try await connection.simpleQuery("CREATE TEMP TABLE batch (id int PRIMARY KEY, name text)")
        let rows: [PostgresBindings] = (0..<1000).map { [Int32($0), "name-\($0)"] }
        let tags = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", rows)
        #expect(tags.count == 1000)
        #expect(try tags.allSatisfy { try $0.get() == "INSERT 0 1" })

        // Row 2 collides with an existing key: nothing of the atomic batch stays.
        let colliding: [PostgresBindings] = [[Int32(5000), "a"], [Int32(5001), "b"], [Int32(3), "dup"], [Int32(5002), "c"]]
        do {
            _ = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", colliding)
            Issue.record("a duplicate key was accepted")
        } catch {
            #expect(error.sqlState == .uniqueViolation)
            #expect(error.message.contains("execution 2 of 4"))
        }
        #expect(try await connection.execute("SELECT count(*) FROM batch").rows[0].decode(Int.self, column: 0) == 1000)

        let outcomes = try await connection.executeMany("INSERT INTO batch VALUES ($1, $2)", colliding, atomic: false)
        #expect(outcomes.map { (try? $0.get()) != nil } == [true, true, false, true])
        #expect(try await connection.execute("SELECT count(*) FROM batch").rows[0].decode(Int.self, column: 0) == 1003)
    }
}
