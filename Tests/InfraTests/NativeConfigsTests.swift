import Foundation
import Infra
import RESP
import Settings
import TestSupport
import Testing
import Transport

@Suite("Native mode configuration files", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.nats.isAvailable))
struct NativeConfigsTests {
    static func settings(redisPort: Int) -> Settings {
        var settings = Settings()
        settings.postgres.port = 55432
        settings.redis.port = redisPort
        settings.redis.password = Secret("pa\"ss\\word")
        settings.natsURL = "nats://127.0.0.1:54222"
        settings.nats.user = "service"
        settings.nats.password = Secret("n\"ats")
        return settings
    }

    @Test func theRenderedFilesAreWhatTheServersAccept() async throws {
        let root = try LiveServer.scratchDirectory("infra-root")
        defer { try? FileManager.default.removeItem(at: root) }
        let listener = try Listener.bind()
        let redisPort = try #require(listener.endpoint.port)
        listener.close()
        let configs = NativeConfigs(settings: Self.settings(redisPort: redisPort), root: root.path)
        for directory in ["redis", "nats", "prometheus", "logs", "run"] {
            try FileManager.default.createDirectory(atPath: configs.path(directory), withIntermediateDirectories: true)
        }
        for file in configs.files { try file.contents.write(toFile: configs.path(file.path), atomically: true, encoding: .utf8) }

        // nats-server and promtool check their files.
        let nats = try await runCommand(try LiveServer.require("INFRA_TEST_NATS_SERVER_BINARY"), ["-t", "-c", configs.path("nats/nats.conf")], check: false)
        #expect(nats.status == 0, "nats-server refused the rendered nats.conf")
        #expect(configs.nats.contains("listen: 127.0.0.1:54222") && configs.nats.contains("user: \"service\""))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
            let prometheus = try await runCommand("/usr/bin/promtool", ["check", "config", configs.path("prometheus/prometheus.yml")], check: false)
            #expect(prometheus.status == 0, "promtool refused the rendered prometheus.yml")
        } else if LiveServer.isCI {
            Issue.record("promtool is missing: make test installs prometheus")
        }

        // redis-server runs with the rendered redis.conf: loopback, the quoted password, AOF.
        let redis = try ChildProcess(["/usr/bin/redis-server", configs.path("redis/redis.conf")])
        defer { redis.stop() }
        var configuration = RedisConfiguration(host: "127.0.0.1", port: redisPort)
        configuration.password = "pa\"ss\\word"
        var connection: RedisConnection?
        for _ in 0..<100 where connection == nil {
            connection = try? await RedisConnection.connect(configuration)
            if connection == nil { try await Task.sleep(for: .milliseconds(30)) }
        }
        let client = try #require(connection, "redis-server started with the rendered configuration")
        defer { client.close() }
        func setting(_ name: String) async throws -> String? {
            switch try await client.send(["CONFIG", "GET", .string(name)]) {
            case .map(let pairs): return pairs.first?.value.string
            case .array(let values): return values.last?.string
            default: return nil
            }
        }
        #expect(try await setting("appendonly") == "yes")
        #expect(try await setting("maxmemory-policy") == "volatile-lru")
        #expect(try await setting("bind")?.contains("127.0.0.1") == true)
        #expect(configs.postgresArguments.contains("listen_addresses=127.0.0.1") && configs.postgresArguments.contains("port=55432"))
        #expect(!configs.postgresHBA.contains("trust") && !configs.postgresHBA.contains("md5"))
    }
}
