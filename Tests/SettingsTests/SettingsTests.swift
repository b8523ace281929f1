import Foundation
import Testing
@testable import Settings

@Suite("Typed settings")
struct SettingsTests {
    static let projectRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A copy of the shipped settings.toml in a folder of its own, so that no developer's
    /// .secrets.toml or .env takes part.
    private func shippedFolder(_ extra: [String: String] = [:]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("shipped-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.projectRoot.appendingPathComponent("settings.toml"), to: folder.appendingPathComponent("settings.toml"))
        for (name, content) in extra { try Data(content.utf8).write(to: folder.appendingPathComponent(name)) }
        return folder
    }

    @Test func shippedFileGivesTheSeedDefaults() throws {
        let folder = try shippedFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = try Settings.load(root: folder.path, environment: [:])
        #expect(settings.activeEnvironment == "DEVELOPMENT")
        #expect(settings.databaseURL == "postgresql://transcription@127.0.0.1:5432/transcription")
        #expect(settings.redisURL == "redis://127.0.0.1:6379/0")
        #expect(settings.natsJetStreamEnabled)
        #expect(settings.whisperModelSize == "large-v3")
        #expect(settings.storageType == .nats)
        #expect(settings.prometheusPort == 9090)
        #expect(settings.logLevel == "DEBUG", "[development] sets DEBUG")
        #expect(settings.debug)
        #expect(settings.accessTokenExpireMinutes == 10080)
        #expect(settings.maxFileSizeMB == 200)
        #expect(settings.maxConcurrentTasks == 5)
        #expect(settings.autoDeleteFiles && settings.autoDeleteTimeoutHours == 24)
        #expect(settings.nats.streams.map(\.name) == ["EVENTS", "TASKS"])
        #expect(settings.nats.streams[1].retention == "workqueue")
        #expect(settings.nats.keyValueBuckets.map(\.name) == ["STORAGE"])
        #expect(settings.nats.objectStores.map(\.name) == ["AUDIO", "EXPORTS"])

        let testing = try Settings.load(root: folder.path, environment: ["ENV_FOR_DYNACONF": "testing"])
        #expect(testing.environment == "testing" && testing.maxConcurrentTasks == 2 && testing.logLevel == "WARNING")
    }

    @Test func productionRefusesDefaultSecretsAllAtOnce() throws {
        let folder = try shippedFolder([".secrets.toml": "[default]\nbot_token = \"your-telegram-bot-token\"\nsecret_key = \"short\"\n"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let error = #expect(throws: SettingsValidationError.self) {
            try Settings.load(root: folder.path, environment: ["ENV_FOR_DYNACONF": "production", "TRANSCRIPTION_GRAFANA__ADMIN_PASSWORD": "admin"])
        }
        let keys = error?.issues.map(\.key) ?? []
        #expect(keys.sorted() == ["BOT_TOKEN", "GRAFANA.ADMIN_PASSWORD", "POSTGRES.PASSWORD", "SECRET_KEY"])
        let bot = error?.issues.first { $0.key == "BOT_TOKEN" }
        #expect(bot?.source.hasSuffix(".secrets.toml [default]") == true, "\(String(describing: bot))")
        let grafana = error?.issues.first { $0.key == "GRAFANA.ADMIN_PASSWORD" }
        #expect(grafana?.source == "variable TRANSCRIPTION_GRAFANA__ADMIN_PASSWORD")
        #expect(error?.issues.first { $0.key == "POSTGRES.PASSWORD" }?.message.contains("empty") == true)
        #expect(error?.description.contains(Settings.placeholderBotToken) == false, "the report never repeats a secret's value")

        let good = try Settings.load(root: folder.path, environment: [
            "ENV_FOR_DYNACONF": "production",
            "TRANSCRIPTION_BOT_TOKEN": "123456:real-token",
            "TRANSCRIPTION_SECRET_KEY": String(repeating: "k", count: 40),
            "TRANSCRIPTION_POSTGRES__PASSWORD": "a-real-password",
            "TRANSCRIPTION_GRAFANA__ADMIN_PASSWORD": "another-real-password",
        ])
        #expect(good.isProduction)
        #expect(good.postgres.host == "127.0.0.1", "__ merged into the table instead of replacing it")
    }

    @Test func everyTypeProblemIsReportedWithItsSourceAndExpectation() throws {
        let folder = try shippedFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let error = #expect(throws: SettingsValidationError.self) {
            try Settings.load(root: folder.path, environment: [
                "TRANSCRIPTION_PROMETHEUS_PORT": "abc",
                "TRANSCRIPTION_POSTGRES__PORT": "70000",
                "TRANSCRIPTION_STORAGE_TYPE": "ftp",
                "TRANSCRIPTION_DEBUG": "maybe",
                "TRANSCRIPTION_REDIS_URL": "http://cache:6379",
                "TRANSCRIPTION_POSTGRES__POOL_MIN": "20",
            ])
        }
        let issues = error?.issues ?? []
        #expect(issues.count == 6, "\(issues)")
        let port = issues.first { $0.key == "PROMETHEUS_PORT" }
        #expect(port?.description == "PROMETHEUS_PORT (from variable TRANSCRIPTION_PROMETHEUS_PORT): expected an integer in 1...65535, got the string \"abc\"")
        #expect(issues.contains { $0.key == "POSTGRES.PORT" && $0.message.contains("70000") })
        #expect(issues.contains { $0.key == "STORAGE_TYPE" && $0.message.contains("nats, local, s3") })
        #expect(issues.contains { $0.key == "DEBUG" && $0.message.contains("true or false") })
        #expect(issues.contains { $0.key == "REDIS_URL" && $0.message.contains("redis://") })
        #expect(issues.contains { $0.key == "POSTGRES.POOL_MIN" && $0.message.contains("POOL_MAX") })
    }

    @Test func secretsNeverPrintAndURLsLoseTheirPasswords() throws {
        let folder = try shippedFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = try Settings.load(root: folder.path, environment: [
            "TRANSCRIPTION_POSTGRES__PASSWORD": "pg-s3cret/with:chars",
            "TRANSCRIPTION_BOT_TOKEN": "123:bot-s3cret",
            "TRANSCRIPTION_NATS_URL": "nats://user:nats-s3cret@127.0.0.1:4222",
        ])
        let text = settings.redactedDescription
        for secret in ["pg-s3cret", "bot-s3cret", "nats-s3cret"] { #expect(!text.contains(secret), "\(text)") }
        #expect(text.contains("NATS_URL: nats://user:***@127.0.0.1:4222"))
        #expect("\(settings.botToken)" == "********")
        #expect(text.contains("POSTGRES.PASSWORD: ********"))
        #expect(URLRedaction.redact("rediss://:pw@cache:6380/1") == "rediss://:***@cache:6380/1")
        #expect(URLRedaction.redact("redis://pw@cache/1", bareUserInfoIsSecret: true) == "redis://***@cache/1")
        #expect(URLRedaction.redact("postgresql://user@host/db") == "postgresql://user@host/db")
        #expect(URLRedaction.redact("postgresql://u:p@h1:5432,h2/db?x=@") == "postgresql://u:***@h1:5432,h2/db?x=@")
        #expect(URLRedaction.redact("nats://héllo:pässword@host") == "nats://héllo:***@host")
    }

    @Test func declaredDefaultsAreTheShippedDefaultSection() throws {
        // Only [default] of the shipped file: no environment section, no variables.
        let shipped = try String(contentsOf: Self.projectRoot.appendingPathComponent("settings.toml"), encoding: .utf8)
        let defaultSection = shipped.components(separatedBy: "\n[development]")[0]
        let folder = try shippedFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(defaultSection.utf8).write(to: folder.appendingPathComponent("settings.toml"))
        let fromFile = try Settings.load(root: folder.path, environment: [:])
        let declared = Settings()
        for field in Settings.fields {
            #expect(field.describe(fromFile) == field.describe(declared), "\(field.key): settings.toml says \(field.describe(fromFile)), Settings() \(field.describe(declared))")
        }
        #expect(fromFile.nats.streams == declared.nats.streams)
        #expect(fromFile.nats.keyValueBuckets == declared.nats.keyValueBuckets)
        #expect(fromFile.nats.objectStores == declared.nats.objectStores)
        #expect(Settings.fields.count == Set(Settings.fields.map(\.key)).count, "each key once")
    }

    @Test func everyFieldReportsItsSource() throws {
        let folder = try shippedFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try SettingsLoader(root: folder.path).load(environment: ["TRANSCRIPTION_REDIS__PORT": "6380"])
        let settings = try Settings(decoding: result)
        let described = Dictionary(uniqueKeysWithValues: settings.describedSettings(result).map { ($0.key, ($0.value, $0.source)) })
        #expect(described["REDIS.PORT"]?.0 == "6380")
        #expect(described["REDIS.PORT"]?.1.contains("TRANSCRIPTION_REDIS__PORT") == true, "\(String(describing: described["REDIS.PORT"]))")
        #expect(described["PYANNOTE_TOKEN"]?.1 == "default")
        #expect(described["POSTGRES.HOST"]?.1.contains("settings.toml") == true, "\(String(describing: described["POSTGRES.HOST"]))")
    }

    @Test(.enabled(if: SettingsOracle.isAvailable), arguments: ["development", "testing", "production"])
    func dynaconfReadsTheShippedFileTheSameWay(_ environmentName: String) async throws {
        let folder = try shippedFolder([".secrets.toml": try String(contentsOf: Self.projectRoot.appendingPathComponent(".secrets.toml.example"), encoding: .utf8)])
        defer { try? FileManager.default.removeItem(at: folder) }
        let environment = SettingsOracle.baseEnvironment(["ENV_FOR_DYNACONF": environmentName, "TRANSCRIPTION_POSTGRES__PASSWORD": "p"])
        let oracle = try #require(try await SettingsOracle.run("settings", folder.path, environment: environment) as? [String: Any])
        let result = try SettingsLoader(root: folder.path).load(environment: environment)
        let difference = SettingsDifferentialTests.difference(.table(result.settings), oracle["settings"] as Any, path: "")
        #expect(difference == nil, "\(difference ?? "")")
    }
}
