import Transport

extension Settings {
    /// The placeholder the example secrets file ships for BOT_TOKEN; refused in production.
    public static let placeholderBotToken = "your-telegram-bot-token"
    /// Secret values that are defaults somewhere and therefore never acceptable in production.
    static let knownDefaultSecrets: Set<String> = ["", "postgres", "admin", "password", "secret", "change-me", "changeme", placeholderBotToken]
    /// LOG_LEVEL values Python's logging understands.
    static let logLevels: Set<String> = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

    /// Loads files and variables as Dynaconf does, then decodes and validates.
    /// Throws ``SettingsError`` when loading fails and ``SettingsValidationError`` listing every problem.
    public static func load(root: String? = nil, environment: [String: String]) throws -> Settings {
        let result = try SettingsLoader(root: root).load(environment: environment)
        return try Settings(decoding: result)
    }

    /// Decodes a loaded tree; every problem is collected before throwing.
    public init(decoding result: SettingsLoader.Result) throws(SettingsValidationError) {
        var reader = SettingsReader(result: result)
        let postgres = PostgresSettings(
            host: reader.string(["POSTGRES", "HOST"], "127.0.0.1"),
            port: reader.port(["POSTGRES", "PORT"], 5432),
            user: reader.string(["POSTGRES", "USER"], "transcription"),
            password: reader.secret(["POSTGRES", "PASSWORD"]),
            database: reader.string(["POSTGRES", "DATABASE"], "transcription"),
            poolMinimum: reader.integer(["POSTGRES", "POOL_MIN"], 1, in: 0...1000),
            poolMaximum: reader.integer(["POSTGRES", "POOL_MAX"], 10, in: 1...1000),
            connectTimeoutSeconds: reader.integer(["POSTGRES", "CONNECT_TIMEOUT_SECONDS"], 10, in: 1...3600),
            statementTimeoutSeconds: reader.integer(["POSTGRES", "STATEMENT_TIMEOUT_SECONDS"], 0, in: 0...86400))
        if postgres.poolMinimum > postgres.poolMaximum {
            reader.report(["POSTGRES", "POOL_MIN"], "must not exceed POOL_MAX (\(postgres.poolMaximum))")
        }
        let redis = RedisSettings(
            host: reader.string(["REDIS", "HOST"], "127.0.0.1"),
            port: reader.port(["REDIS", "PORT"], 6379),
            password: reader.secret(["REDIS", "PASSWORD"]),
            database: reader.integer(["REDIS", "DB"], 0, in: 0...15),
            poolMaximum: reader.integer(["REDIS", "POOL_MAX"], 10, in: 1...1000),
            timeoutSeconds: reader.integer(["REDIS", "TIMEOUT_SECONDS"], 5, in: 1...3600),
            sessionPrefix: reader.string(["REDIS", "SESSION_PREFIX"], "transcription:session:"),
            sessionTTLSeconds: reader.integer(["REDIS", "SESSION_TTL_SECONDS"], 86400, in: 1...31_536_000))
        let nats = NATSSettings(
            user: reader.string(["NATS", "USER"], ""),
            password: reader.secret(["NATS", "PASSWORD"]),
            streams: reader.streams(),
            keyValueBuckets: reader.keyValueBuckets(),
            objectStores: reader.objectStores())
        let grafana = GrafanaSettings(
            port: reader.port(["GRAFANA", "PORT"], 3000),
            adminUser: reader.string(["GRAFANA", "ADMIN_USER"], "admin"),
            adminPassword: reader.secret(["GRAFANA", "ADMIN_PASSWORD"]))

        self.init(
            databaseURL: reader.url(["DATABASE_URL"], "postgresql://transcription@127.0.0.1:5432/transcription", schemes: ["postgresql", "postgres"]),
            redisURL: reader.url(["REDIS_URL"], "redis://127.0.0.1:6379/0", schemes: ["redis", "rediss"]),
            natsURL: reader.url(["NATS_URL"], "nats://127.0.0.1:4222", schemes: ["nats", "tls"]),
            natsJetStreamEnabled: reader.boolean(["NATS_JETSTREAM_ENABLED"], true),
            botToken: reader.secret(["BOT_TOKEN"]),
            webhookURL: reader.string(["WEBHOOK_URL"], ""),
            whisperModelSize: reader.string(["WHISPER_MODEL_SIZE"], "large-v3"),
            pyannoteToken: reader.secret(["PYANNOTE_TOKEN"]),
            modelCacheDirectory: reader.string(["MODEL_CACHE_DIR"], "./models"),
            storageType: reader.storageType(),
            storagePath: reader.string(["STORAGE_PATH"], "./storage"),
            prometheusPort: reader.port(["PROMETHEUS_PORT"], 9090),
            logLevel: reader.choice(["LOG_LEVEL"], "INFO", from: Settings.logLevels),
            secretKey: reader.secret(["SECRET_KEY"]),
            accessTokenExpireMinutes: reader.integer(["ACCESS_TOKEN_EXPIRE_MINUTES"], 10080, in: 1...5_256_000),
            debug: reader.boolean(["DEBUG"], false),
            environment: reader.string(["ENVIRONMENT"], "development"),
            maxFileSizeMB: reader.integer(["MAX_FILE_SIZE_MB"], 200, in: 1...10_240),
            maxConcurrentTasks: reader.integer(["MAX_CONCURRENT_TASKS"], 5, in: 1...1024),
            enableDiarization: reader.boolean(["ENABLE_DIARIZATION"], true),
            enableWebApp: reader.boolean(["ENABLE_WEBAPP"], true),
            autoDeleteFiles: reader.boolean(["AUTO_DELETE_FILES"], true),
            autoDeleteTimeoutHours: reader.integer(["AUTO_DELETE_TIMEOUT_HOURS"], 24, in: 1...8760),
            postgres: postgres, redis: redis, nats: nats, grafana: grafana,
            activeEnvironment: result.environment)

        if isProduction { validateProductionSecrets(&reader) }
        if !reader.issues.isEmpty { throw SettingsValidationError(issues: reader.issues) }
    }

    /// Whether `production` is one of the active environments.
    public var isProduction: Bool {
        activeEnvironment.split(separator: ",").contains { (part: Substring) in String(part).trimmingSpaces().lowercased() == "production" }
    }

    private func validateProductionSecrets(_ reader: inout SettingsReader) {
        let checks: [([String], Secret, String)] = [
            (["SECRET_KEY"], secretKey, "a random key of at least 32 characters"),
            (["BOT_TOKEN"], botToken, "the bot's token from @BotFather"),
            (["POSTGRES", "PASSWORD"], postgres.password, "a password that is not a default"),
            (["GRAFANA", "ADMIN_PASSWORD"], grafana.adminPassword, "a password that is not a default"),
        ]
        for (path, secret, expected) in checks where Settings.knownDefaultSecrets.contains(secret.value) {
            reader.report(path, "is \(secret.isEmpty ? "empty" : "a default value") in production; expected \(expected)")
        }
        if !secretKey.isEmpty, !Settings.knownDefaultSecrets.contains(secretKey.value), secretKey.value.count < 32 {
            reader.report(["SECRET_KEY"], "is \(secretKey.value.count) characters long in production; expected at least 32")
        }
    }

    /// The PostgreSQL URL with the password from POSTGRES.PASSWORD added (percent-encoded) when
    /// DATABASE_URL carries none. For connecting only: print ``redactedDescription`` instead.
    public var postgresConnectionURL: String {
        guard !postgres.password.isEmpty, let schemeEnd = databaseURL.firstRange(of: "://") else { return databaseURL }
        let rest = databaseURL[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@"), !rest[..<at].contains(":") else { return databaseURL }
        return String(databaseURL[..<at]) + ":" + Self.percentEncode(postgres.password.value) + String(databaseURL[at...])
    }

    static func percentEncode(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.append(Character(UnicodeScalar(byte)))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                output += "%" + (byte < 16 ? "0" + hex : hex)
            }
        }
        return output
    }

    /// Every setting on its own line, secrets masked and URLs without passwords: safe to log.
    public var redactedDescription: String {
        var lines: [String] = [
            "ENVIRONMENT (active): \(activeEnvironment)",
            "DATABASE_URL: \(Redaction.url(databaseURL))",
            "REDIS_URL: \(Redaction.url(redisURL))",
            "NATS_URL: \(Redaction.url(natsURL))",
            "NATS_JETSTREAM_ENABLED: \(natsJetStreamEnabled)",
            "BOT_TOKEN: \(botToken)",
            "WEBHOOK_URL: \(Redaction.url(webhookURL))",
            "WHISPER_MODEL_SIZE: \(whisperModelSize)",
            "PYANNOTE_TOKEN: \(pyannoteToken)",
            "MODEL_CACHE_DIR: \(modelCacheDirectory)",
            "STORAGE_TYPE: \(storageType.rawValue)",
            "STORAGE_PATH: \(storagePath)",
            "PROMETHEUS_PORT: \(prometheusPort)",
            "LOG_LEVEL: \(logLevel)",
            "SECRET_KEY: \(secretKey)",
            "ACCESS_TOKEN_EXPIRE_MINUTES: \(accessTokenExpireMinutes)",
            "DEBUG: \(debug)",
            "ENVIRONMENT: \(environment)",
            "MAX_FILE_SIZE_MB: \(maxFileSizeMB)",
            "MAX_CONCURRENT_TASKS: \(maxConcurrentTasks)",
            "ENABLE_DIARIZATION: \(enableDiarization)",
            "ENABLE_WEBAPP: \(enableWebApp)",
            "AUTO_DELETE_FILES: \(autoDeleteFiles)",
            "AUTO_DELETE_TIMEOUT_HOURS: \(autoDeleteTimeoutHours)",
            "POSTGRES: \(postgres.user)@\(postgres.host):\(postgres.port)/\(postgres.database) password \(postgres.password) pool \(postgres.poolMinimum)...\(postgres.poolMaximum)",
            "REDIS: \(redis.host):\(redis.port)/\(redis.database) password \(redis.password) pool \(redis.poolMaximum)",
            "NATS: user \(nats.user.isEmpty ? "(none)" : nats.user) password \(nats.password); streams \(nats.streams.map(\.name)); KV \(nats.keyValueBuckets.map(\.name)); object stores \(nats.objectStores.map(\.name))",
            "GRAFANA: port \(grafana.port) admin \(grafana.adminUser) password \(grafana.adminPassword)",
        ]
        lines.sort { $0 < $1 }
        return lines.joined(separator: "\n")
    }
}

/// Reads typed values out of a loaded tree, collecting every problem with its source.
struct SettingsReader {
    let result: SettingsLoader.Result
    var issues: [SettingsIssue] = []

    init(result: SettingsLoader.Result) {
        self.result = result
    }

    mutating func report(_ path: [String], _ message: String) {
        issues.append(SettingsIssue(key: path.joined(separator: "."), source: result.source(of: path) ?? "default", message: message))
    }

    func value(_ path: [String], in table: SettingsTable? = nil) -> SettingValue? {
        var current: SettingValue = .table(table ?? result.settings)
        for key in path {
            guard case .table(let level) = current, let next = level.value(forKeyIgnoringCase: key) else { return nil }
            current = next
        }
        return current
    }

    static func describe(_ value: SettingValue) -> String {
        switch value {
        case .string(let string): "the string \(string.debugDescription)"
        case .integer(let integer): "the integer \(integer)"
        case .float(let float): "the float \(float)"
        case .boolean(let flag): "the boolean \(flag)"
        case .null: "null"
        case .dateTime(let toml): "the date/time \(toml)"
        case .array: "a list"
        case .table: "a table"
        case .unresolved: "an unresolved value"
        }
    }

    mutating func string(_ path: [String], _ fallback: String) -> String {
        guard let value = value(path) else { return fallback }
        if case .string(let string) = value { return string }
        report(path, "expected a string, got \(Self.describe(value))")
        return fallback
    }

    mutating func secret(_ path: [String]) -> Secret {
        guard let value = value(path) else { return Secret("") }
        if case .string(let string) = value { return Secret(string) }
        report(path, "expected a string, got \(value == .null ? "null" : "a \(Self.kind(value))")")
        return Secret("")
    }

    static func kind(_ value: SettingValue) -> String {
        switch value {
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .array: "list"
        case .table: "table"
        default: "value of another type"
        }
    }

    mutating func integer(_ path: [String], _ fallback: Int, in range: ClosedRange<Int>) -> Int {
        guard let value = value(path) else { return fallback }
        guard case .integer(let raw) = value else {
            report(path, "expected an integer in \(range.lowerBound)...\(range.upperBound), got \(Self.describe(value))")
            return fallback
        }
        guard let integer = Int(exactly: raw), range.contains(integer) else {
            report(path, "expected an integer in \(range.lowerBound)...\(range.upperBound), got \(raw)")
            return fallback
        }
        return integer
    }

    mutating func port(_ path: [String], _ fallback: Int) -> Int {
        integer(path, fallback, in: 1...65535)
    }

    mutating func boolean(_ path: [String], _ fallback: Bool) -> Bool {
        guard let value = value(path) else { return fallback }
        if case .boolean(let flag) = value { return flag }
        report(path, "expected true or false, got \(Self.describe(value))")
        return fallback
    }

    mutating func choice(_ path: [String], _ fallback: String, from allowed: Set<String>) -> String {
        let chosen = string(path, fallback)
        guard allowed.contains(chosen.uppercased()) else {
            report(path, "expected one of \(allowed.sorted().joined(separator: ", ")), got \(chosen.debugDescription)")
            return fallback
        }
        return chosen.uppercased()
    }

    mutating func url(_ path: [String], _ fallback: String, schemes: [String]) -> String {
        let text = string(path, fallback)
        guard let end = text.firstRange(of: "://"), schemes.contains(String(text[..<end.lowerBound]).lowercased()) else {
            report(path, "expected a URL starting with \(schemes.map { $0 + "://" }.joined(separator: " or ")), got \(Redaction.url(text).debugDescription)")
            return fallback
        }
        return text
    }

    mutating func storageType() -> Settings.StorageType {
        let text = string(["STORAGE_TYPE"], "nats")
        guard let type = Settings.StorageType(rawValue: text.lowercased()) else {
            report(["STORAGE_TYPE"], "expected one of nats, local, s3, got \(text.debugDescription)")
            return .nats
        }
        return type
    }

    /// The tables of a list setting, or nil when the key is absent.
    mutating func tables(_ path: [String]) -> [SettingsTable]? {
        guard let value = value(path) else { return nil }
        guard case .array(let elements) = value else {
            report(path, "expected a list of tables, got \(Self.describe(value))")
            return []
        }
        var tables: [SettingsTable] = []
        for (index, element) in elements.enumerated() {
            guard case .table(let table) = element else {
                report(path + ["[\(index)]"], "expected a table, got \(Self.describe(element))")
                continue
            }
            tables.append(table)
        }
        return tables
    }

    /// Reads a field of one element of a list setting, reporting problems under `KEY[index].FIELD`.
    mutating func field<T>(_ table: SettingsTable, _ path: [String], _ index: Int, _ name: String, _ fallback: T, _ read: (SettingValue) -> T?, expected: String) -> T {
        guard let value = table.value(forKeyIgnoringCase: name) else { return fallback }
        if let typed = read(value) { return typed }
        report(path + ["[\(index)]", name.uppercased()], "expected \(expected), got \(Self.describe(value))")
        return fallback
    }

    static func name(_ value: SettingValue) -> String? {
        guard case .string(let text) = value, !text.isEmpty,
            text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") })
        else { return nil }
        return text
    }

    static func int(_ value: SettingValue) -> Int? {
        if case .integer(let raw) = value { return Int(exactly: raw) }
        return nil
    }

    mutating func streams() -> [NATSSettings.Stream] {
        let path = ["NATS", "STREAMS"]
        guard let tables = tables(path) else {
            return [
                NATSSettings.Stream(name: "EVENTS", subjects: ["events.>"], retention: "limits", maxAgeSeconds: 604_800, maxBytes: -1, storage: "file"),
                NATSSettings.Stream(name: "TASKS", subjects: ["tasks.>"], retention: "workqueue", maxAgeSeconds: 86_400, maxBytes: -1, storage: "file"),
            ]
        }
        return tables.enumerated().map { index, table in
            let name = field(table, path, index, "name", "", Self.name, expected: "a stream name (letters, digits, - and _)")
            let subjects = field(table, path, index, "subjects", [String](), { value in
                guard case .array(let items) = value else { return nil }
                let strings = items.compactMap { item -> String? in if case .string(let text) = item, !text.isEmpty { return text }; return nil }
                return strings.count == items.count && !strings.isEmpty ? strings : nil
            }, expected: "a non-empty list of subjects")
            let retention = field(table, path, index, "retention", "limits", { value in
                if case .string(let text) = value, ["limits", "workqueue", "interest"].contains(text.lowercased()) { return text.lowercased() }
                return nil
            }, expected: "limits, workqueue or interest")
            let maxAge = field(table, path, index, "max_age_seconds", 0, { Self.int($0).flatMap { $0 >= 0 ? $0 : nil } }, expected: "seconds, 0 or more")
            let maxBytes = field(table, path, index, "max_bytes", -1, { Self.int($0).flatMap { $0 >= -1 ? $0 : nil } }, expected: "bytes, or -1")
            let storage = field(table, path, index, "storage", "file", { value in
                if case .string(let text) = value, ["file", "memory"].contains(text.lowercased()) { return text.lowercased() }
                return nil
            }, expected: "file or memory")
            if name.isEmpty { report(path + ["[\(index)]", "NAME"], "is required") }
            return NATSSettings.Stream(name: name, subjects: subjects, retention: retention, maxAgeSeconds: maxAge, maxBytes: maxBytes, storage: storage)
        }
    }

    mutating func keyValueBuckets() -> [NATSSettings.KeyValueBucket] {
        let path = ["NATS", "KV_BUCKETS"]
        guard let tables = tables(path) else {
            return [NATSSettings.KeyValueBucket(name: "STORAGE", history: 1, ttlSeconds: 0, maxValueSize: -1)]
        }
        return tables.enumerated().map { index, table in
            let name = field(table, path, index, "name", "", Self.name, expected: "a bucket name (letters, digits, - and _)")
            if name.isEmpty { report(path + ["[\(index)]", "NAME"], "is required") }
            return NATSSettings.KeyValueBucket(
                name: name,
                history: field(table, path, index, "history", 1, { Self.int($0).flatMap { (1...64).contains($0) ? $0 : nil } }, expected: "1 to 64"),
                ttlSeconds: field(table, path, index, "ttl_seconds", 0, { Self.int($0).flatMap { $0 >= 0 ? $0 : nil } }, expected: "seconds, 0 or more"),
                maxValueSize: field(table, path, index, "max_value_size", -1, { Self.int($0).flatMap { $0 >= -1 ? $0 : nil } }, expected: "bytes, or -1"))
        }
    }

    mutating func objectStores() -> [NATSSettings.ObjectStoreBucket] {
        let path = ["NATS", "OBJECT_STORES"]
        guard let tables = tables(path) else {
            return [
                NATSSettings.ObjectStoreBucket(name: "AUDIO", ttlSeconds: 86_400, maxBytes: -1),
                NATSSettings.ObjectStoreBucket(name: "EXPORTS", ttlSeconds: 604_800, maxBytes: -1),
            ]
        }
        return tables.enumerated().map { index, table in
            let name = field(table, path, index, "name", "", Self.name, expected: "a bucket name (letters, digits, - and _)")
            if name.isEmpty { report(path + ["[\(index)]", "NAME"], "is required") }
            return NATSSettings.ObjectStoreBucket(
                name: name,
                ttlSeconds: field(table, path, index, "ttl_seconds", 0, { Self.int($0).flatMap { $0 >= 0 ? $0 : nil } }, expected: "seconds, 0 or more"),
                maxBytes: field(table, path, index, "max_bytes", -1, { Self.int($0).flatMap { $0 >= -1 ? $0 : nil } }, expected: "bytes, or -1"))
        }
    }
}
