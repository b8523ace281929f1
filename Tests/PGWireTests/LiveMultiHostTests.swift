import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

/// libpq's multi-host semantics against the test PostgreSQL and its streaming standby
/// (INFRA_TEST_POSTGRES_STANDBY_PORT, started by the harness with pg_basebackup -R).
@Suite(
    "Live PostgreSQL: several hosts, target_session_attrs", .enabled(if: LiveServer.postgres.isAvailable && !LiveServer.isPostgres18Pass),
    .timeLimit(.minutes(1)))
struct LiveMultiHostTests {
    private func hosts() throws -> (primary: PostgresConfiguration.Host, standby: PostgresConfiguration.Host) {
        (.init("127.0.0.1", port: Int(try LiveServer.postgres("PORT")) ?? 0), .init("127.0.0.1", port: Int(try LiveServer.postgres("STANDBY_PORT")) ?? 0))
    }

    private func configuration(
        _ hosts: [PostgresConfiguration.Host], _ target: PostgresConfiguration.TargetSessionAttributes
    ) throws -> PostgresConfiguration {
        var configuration = try LiveServer.postgresConfiguration()
        configuration.hosts = hosts
        configuration.targetSessionAttributes = target
        return configuration
    }

    /// Whether the session's server is in recovery, asked of the server itself.
    private func isStandby(_ connection: PostgresConnection) async throws -> Bool {
        try await connection.simpleQuery("SELECT pg_is_in_recovery()").first?.rows.first?.decode(String.self, column: 0) == "t"
    }

    @Test func eachTargetFindsItsServerWhicheverComesFirst() async throws {
        let (primary, standby) = try hosts()
        let cases: [(PostgresConfiguration.TargetSessionAttributes, [PostgresConfiguration.Host], Bool)] = [
            (.any, [standby, primary], true),
            (.any, [primary, standby], false),
            (.readWrite, [standby, primary], false),
            (.primary, [standby, primary], false),
            (.readOnly, [primary, standby], true),
            (.standby, [primary, standby], true),
            (.preferStandby, [primary, standby], true),
            (.preferStandby, [primary], false),
        ]
        for (target, order, expectsStandby) in cases {
            let connection = try await PostgresConnection.connect(try configuration(order, target))
            #expect(try await isStandby(connection) == expectsStandby, "target_session_attrs=\(target.rawValue) over \(order)")
            connection.close()
        }
    }

    @Test func noHostOfTheKindAskedForIsAConnectionErrorSayingWhy() async throws {
        let (primary, standby) = try hosts()
        let toPrimary = try configuration([primary], .standby)
        let toStandby = try configuration([standby], .readWrite)
        do {
            _ = try await PostgresConnection.connect(toPrimary)
            Issue.record("a primary was taken for a standby")
        } catch {
            #expect(error.kind == .connection)
            #expect(error.message.contains("server is not in hot standby mode") && error.message.contains("target_session_attrs=standby"), "\(error)")
        }
        do {
            _ = try await PostgresConnection.connect(toStandby)
            Issue.record("a standby was taken for a read-write session")
        } catch {
            #expect(error.message.contains("session is read-only"), "\(error)")
        }
        // An unreachable host before a fitting one is passed over.
        let connection = try await PostgresConnection.connect(try configuration([.init("127.0.0.1", port: 1), standby, primary], .readWrite))
        #expect(try await isStandby(connection) == false)
        connection.close()
    }

    @Test func theConnectionStringCarriesSeveralHostsAndTheAttributes() async throws {
        let (primary, standby) = try hosts()
        let base = try LiveServer.postgresConfiguration()
        let url = "postgresql://\(base.user)@127.0.0.1:\(standby.port),127.0.0.1:\(primary.port)/\(base.effectiveDatabase)"
            + "?sslmode=disable&target_session_attrs=read-write&load_balance_hosts=disable"
        var configuration = try PostgresConfiguration(connectionString: url)
        #expect(configuration.hosts.count == 2 && configuration.targetSessionAttributes == .readWrite && configuration.loadBalanceHosts == .disable)
        configuration.password = base.password
        let connection = try await PostgresConnection.connect(configuration)
        #expect(try await isStandby(connection) == false)
        connection.close()
        for (keyword, value) in [("target_session_attrs", "writable"), ("load_balance_hosts", "yes")] {
            #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "host=a,b user=u \(keyword)=\(value)") }
        }
        let keywords = try PostgresConfiguration(connectionString: "host=a,b port=1,2 user=u target_session_attrs=prefer-standby load_balance_hosts=random")
        #expect(keywords.targetSessionAttributes == .preferStandby && keywords.loadBalanceHosts == .random)
    }

    @Test func randomLoadBalancingReachesEveryHost() async throws {
        let (primary, standby) = try hosts()
        var configuration = try configuration([primary, standby], .any)
        configuration.loadBalanceHosts = .random
        var standbys = 0
        for _ in 0..<40 {
            let connection = try await PostgresConnection.connect(configuration)
            if try await isStandby(connection) { standbys += 1 }
            connection.close()
        }
        // Both orders are drawn: 40 connections all to one host would happen with p = 2^-39.
        #expect(standbys > 0 && standbys < 40, "\(standbys) of 40 went to the standby")
        configuration.loadBalanceHosts = .disable
        for _ in 0..<5 {
            let connection = try await PostgresConnection.connect(configuration)
            #expect(try await isStandby(connection) == false, "without load balancing the first host is taken")
            connection.close()
        }
    }

    @Test func theStandbyStreamsWhatThePrimaryCommits() async throws {
        let (primary, standby) = try hosts()
        let writer = try await PostgresConnection.connect(try configuration([primary], .readWrite))
        defer { writer.close() }
        let reader = try await PostgresConnection.connect(try configuration([standby], .standby))
        defer { reader.close() }
        let table = "replicated_" + UUID().uuidString.prefix(8).lowercased()
        _ = try await writer.simpleQuery("CREATE TABLE \(table) (n int); INSERT INTO \(table) SELECT generate_series(1, 100)")
        // Wait until the standby has replayed the primary's WAL up to the insert. Under a loaded
        // machine that has taken more than 5 s, so the bound is generous; the failure says how
        // far behind it was.
        let target = try await writer.simpleQuery("SELECT pg_current_wal_lsn()::text").first?.rows.first?.decode(String.self, column: 0) ?? ""
        var replayed: String?
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(40) {
            replayed = try? await reader.simpleQuery("SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= '\(target)'::pg_lsn")
                .first?.rows.first.flatMap { row in try row.decode(Bool.self, column: 1) ? row.decode(String.self, column: 0) : nil }
            if replayed != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(replayed != nil, "the standby had not replayed up to \(target) after 40 s")
        let count = try await reader.simpleQuery("SELECT count(*) FROM \(table)").first?.rows.first?.decode(String.self, column: 0)
        #expect(count == "100")
        await #expect(throws: PostgresError.self) { _ = try await reader.simpleQuery("INSERT INTO \(table) VALUES (1)") }
        _ = try await writer.simpleQuery("DROP TABLE \(table)")
    }
}
