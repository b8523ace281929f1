import Testing
import Transport

@testable import PGWire

@Suite("Connection strings")
struct ConnectionStringTests {
    @Test func urisAsLibpqReadsThem() throws {
        let config = try PostgresConfiguration(
            connectionString: "postgresql://al%40ice:p%3Ass@db1:5433,[::1]:5434/my%20db?sslmode=verify-full&application_name=bot&connect_timeout=7&channel_binding=require")
        #expect(config.user == "al@ice")
        #expect(config.password == "p:ss")
        #expect(config.hosts == [.init("db1", port: 5433), .init("::1", port: 5434)])
        #expect(config.database == "my db")
        #expect(config.sslMode == .verifyFull)
        #expect(config.channelBinding == .require)
        #expect(config.applicationName == "bot")
        #expect(config.connectTimeout == .seconds(7))
        #expect(!config.redactedDescription.contains("p:ss"))

        let socket = try PostgresConfiguration(connectionString: "postgres://%2Fvar%2Frun%2Fpostgresql:5432/app")
        #expect(socket.hosts[0].isUnixSocket)
        #expect(socket.hosts[0].endpoint == .unix(path: "/var/run/postgresql/.s.PGSQL.5432"))

        #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "postgresql://h/db?sslmode=sometimes") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "postgresql://h/db?bogus=1") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "postgresql://h:99999/db") }
    }

    @Test func keywordValueStringsQuotingAndEscapes() throws {
        let config = try PostgresConfiguration(
            connectionString: "host=a,b port=1,2 user=bob password='it\\'s a secret' dbname = app sslmode=disable")
        #expect(config.hosts == [.init("a", port: 1), .init("b", port: 2)])
        #expect(config.password == "it's a secret")
        #expect(config.database == "app")
        #expect(config.sslMode == .disable)
        #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "host=a password='open") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration(connectionString: "host=a,b,c port=1,2") }
    }
}
