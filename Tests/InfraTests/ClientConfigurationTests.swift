import Infra
import NATSProto
import PGWire
import RESP
import Settings
import Testing

@Suite("Client configurations from settings")
struct ClientConfigurationTests {
    @Test func postgresTakesTheURLAndFillsInThePasswordAndTimeouts() throws {
        var settings = Settings()
        settings.databaseURL = "postgresql://transcription@db.internal:6432/transcription?sslmode=require"
        settings.postgres.password = Secret("pg-s3cret/with:chars")
        settings.postgres.connectTimeoutSeconds = 7
        settings.postgres.statementTimeoutSeconds = 30
        let configuration = try PostgresConfiguration(settings: settings, applicationName: "bot")
        #expect(configuration.hosts == [.init("db.internal", port: 6432)])
        #expect(configuration.user == "transcription")
        #expect(configuration.password == "pg-s3cret/with:chars", "no percent-encoding round trip")
        #expect(configuration.database == "transcription")
        #expect(configuration.sslMode == .require)
        #expect(configuration.connectTimeout == .seconds(7))
        #expect(configuration.runtimeParameters.contains { $0.name == "statement_timeout" && $0.value == "30000" })
        #expect(configuration.applicationName == "bot")
    }

    @Test func aPasswordOrTimeoutInTheURLWins() throws {
        var settings = Settings()
        settings.databaseURL = "postgresql://app:from-url@127.0.0.1/app?connect_timeout=3"
        settings.postgres.password = Secret("from-settings")
        let configuration = try PostgresConfiguration(settings: settings)
        #expect(configuration.password == "from-url")
        #expect(configuration.connectTimeout == .seconds(3))
        #expect(!configuration.runtimeParameters.contains { $0.name == "statement_timeout" }, "0 sets none")
    }

    @Test func redisTakesTheURLAndTheSettingsPasswordAndTimeout() throws {
        var settings = Settings()
        settings.redisURL = "redis://127.0.0.1:6380/2"
        settings.redis.password = Secret("r3dis")
        settings.redis.timeoutSeconds = 4
        let configuration = try RedisConfiguration(settings: settings, clientName: "worker")
        #expect(configuration.host == "127.0.0.1" && configuration.port == 6380 && configuration.database == 2)
        #expect(configuration.password == "r3dis")
        #expect(configuration.commandTimeout == .seconds(4))
        #expect(configuration.clientName == "worker")
        settings.redisURL = "redis://:url-pass@127.0.0.1/0?timeout=1"
        let fromURL = try RedisConfiguration(settings: settings)
        #expect(fromURL.password == "url-pass")
        #expect(fromURL.commandTimeout == .seconds(1))
    }

    @Test func natsTakesEveryServerAndTheUser() {
        var settings = Settings()
        settings.natsURL = "nats://10.0.0.1:4222, nats://10.0.0.2:4222"
        settings.nats.user = "bot"
        settings.nats.password = Secret("n4ts")
        let configuration = NATSConfiguration(settings: settings, name: "bot")
        #expect(configuration.servers == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"])
        #expect(configuration.user == "bot" && configuration.password == "n4ts")
        #expect(configuration.name == "bot")
        #expect(NATSConfiguration(settings: Settings()).user == nil, "no user: no user/password auth")
    }

    @Test func invalidURLsAreTypedErrorsWithoutTheirPasswords() {
        var settings = Settings()
        settings.databaseURL = "postgresql://u:topsecret@host:notaport/db"
        let error = #expect(throws: PostgresError.self) { try PostgresConfiguration(settings: settings) }
        #expect(error?.description.contains("topsecret") == false, "\(String(describing: error))")
    }
}
