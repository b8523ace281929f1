import Foundation
import TestSupport
import Testing
import Transport

@testable import PGWire

/// PostgreSQL through a proxy that misbehaves: a reply cut midway ends in a typed error and a new
/// connection works; a black-holed server is found by the deadlines; a link that carries one byte
/// per write still works.
@Suite("PostgreSQL through a faulty link", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.postgres.isAvailable))
struct PostgresFaultProxyTests {
    func configuration(_ proxy: FaultProxy) throws -> PostgresConfiguration {
        var configuration = try LiveServer.postgresConfiguration()
        configuration.hosts = [.init("127.0.0.1", port: proxy.port)]
        configuration.connectTimeout = .seconds(2)
        return configuration
    }

    @Test func aReplyCutMidwayIsATypedErrorAndANewConnectionWorks() async throws {
        let proxy = try FaultProxy(upstreamPort: Int(try LiveServer.postgres("PORT")) ?? 0)
        defer { proxy.close() }
        let connection = try await PostgresConnection.connect(try configuration(proxy))
        defer { connection.close() }
        _ = try await connection.simpleQuery("SELECT 1")
        proxy.setMode(.cutDownstream(afterBytes: 3000))
        let error = await #expect(throws: PostgresError.self) {
            _ = try await connection.simpleQuery("SELECT repeat('x', 100) FROM generate_series(1, 1000)")
        }
        #expect(error?.kind == .connection, "\(String(describing: error))")
        #expect(connection.isClosed)
        proxy.setMode(.pass)
        let again = try await PostgresConnection.connect(try configuration(proxy))
        defer { again.close() }
        #expect(try await again.simpleQuery("SELECT 2").first?.rows.count == 1)
    }

    @Test func aBlackHoledServerIsFoundByTheDeadlines() async throws {
        let proxy = try FaultProxy(upstreamPort: Int(try LiveServer.postgres("PORT")) ?? 0, mode: .blackHole)
        defer { proxy.close() }
        var silent = try configuration(proxy)
        silent.connectTimeout = .milliseconds(500)
        let clock = ContinuousClock()
        let start = clock.now
        let connectError = await #expect(throws: PostgresError.self) { _ = try await PostgresConnection.connect(silent) }
        #expect(clock.now - start < .seconds(3), "the connect deadline ended the wait")
        #expect(connectError != nil)

        // A live connection that goes silent: the query's timeout, then the grace its
        // CancelRequest gets (which cannot arrive either), end the wait and the connection.
        proxy.setMode(.pass)
        var live = try configuration(proxy)
        live.cancelGracePeriod = .milliseconds(500)
        let connection = try await PostgresConnection.connect(live)
        defer { connection.close() }
        proxy.setMode(.blackHole)
        let queryStart = clock.now
        await #expect(throws: PostgresError.self) { _ = try await connection.simpleQuery("SELECT 1", timeout: .milliseconds(300)) }
        #expect(clock.now - queryStart < .milliseconds(2000), "timeout 300 ms + grace 500 ms, took \(clock.now - queryStart)")
        #expect(connection.isClosed, "a connection whose cancel went unanswered is not reused")
    }

    @Test func aLinkOfSingleBytesStillCarriesEverything() async throws {
        let proxy = try FaultProxy(upstreamPort: Int(try LiveServer.postgres("PORT")) ?? 0, mode: .singleBytes)
        defer { proxy.close() }
        let connection = try await PostgresConnection.connect(try configuration(proxy))
        defer { connection.close() }
        let rows = try await connection.query("SELECT g, md5(g::text) FROM generate_series(1, 200) AS g").collect()
        #expect(rows.count == 200)
        #expect(try rows.last?.decode(String.self, column: 1) == "3644a684f98ea8fe223c713b77189a77")
    }
}
