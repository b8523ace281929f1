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
        self.init()
        var reader = SettingsReader(result: result)
        for field in Settings.fields { field.decode(&reader, &self) }
        activeEnvironment = result.environment
        if postgres.poolMinimum > postgres.poolMaximum {
            reader.report(["POSTGRES", "POOL_MIN"], "must not exceed POOL_MAX (\(postgres.poolMaximum))")
        }
        if redis.poolMinimum > redis.poolMaximum {
            reader.report(["REDIS", "POOL_MIN"], "must not exceed POOL_MAX (\(redis.poolMaximum))")
        }
        if nats.clusterSize == 2 {
            reader.report(["NATS", "CLUSTER_SIZE"], "is 2; a JetStream cluster needs 3 nodes or more to keep a quorum (or 1 for a single server)")
        }
        if isProduction { validateProductionSecrets(&reader) }
        if !reader.issues.isEmpty { throw SettingsValidationError(issues: reader.issues) }
    }

    /// Every setting: its key, how it is read and validated, and how it prints. The one list of
    /// them; decoding, ``redactedDescription`` and ``describedSettings(_:)`` all come from it.
    public static let fields: [SettingField<Settings>] = [
        .url("DATABASE_URL", \.databaseURL, schemes: ["postgresql", "postgres"]),
        .url("REDIS_URL", \.redisURL, schemes: ["redis", "rediss"], bareUserInfoIsSecret: true),
        .url("NATS_URL", \.natsURL, schemes: ["nats", "tls"]),
        .boolean("NATS_JETSTREAM_ENABLED", \.natsJetStreamEnabled),
        .secret("BOT_TOKEN", \.botToken),
        .string("WEBHOOK_URL", \.webhookURL, printsAsURL: true),
        .string("WHISPER_MODEL_SIZE", \.whisperModelSize),
        .secret("PYANNOTE_TOKEN", \.pyannoteToken),
        .string("MODEL_CACHE_DIR", \.modelCacheDirectory),
        .choice("STORAGE_TYPE", \.storageType),
        .string("STORAGE_PATH", \.storagePath),
        .port("PROMETHEUS_PORT", \.prometheusPort),
        .logLevel("LOG_LEVEL", \.logLevel),
        .secret("SECRET_KEY", \.secretKey),
        .integer("ACCESS_TOKEN_EXPIRE_MINUTES", \.accessTokenExpireMinutes, in: 1...5_256_000),
        .boolean("DEBUG", \.debug),
        .string("ENVIRONMENT", \.environment),
        .integer("MAX_FILE_SIZE_MB", \.maxFileSizeMB, in: 1...10_240),
        .integer("MAX_CONCURRENT_TASKS", \.maxConcurrentTasks, in: 1...1024),
        .boolean("ENABLE_DIARIZATION", \.enableDiarization),
        .boolean("ENABLE_WEBAPP", \.enableWebApp),
        .boolean("AUTO_DELETE_FILES", \.autoDeleteFiles),
        .integer("AUTO_DELETE_TIMEOUT_HOURS", \.autoDeleteTimeoutHours, in: 1...8760),
        .string("POSTGRES.HOST", \.postgres.host),
        .port("POSTGRES.PORT", \.postgres.port),
        .string("POSTGRES.USER", \.postgres.user),
        .secret("POSTGRES.PASSWORD", \.postgres.password),
        .string("POSTGRES.DATABASE", \.postgres.database),
        .integer("POSTGRES.POOL_MIN", \.postgres.poolMinimum, in: 0...1000),
        .integer("POSTGRES.POOL_MAX", \.postgres.poolMaximum, in: 1...1000),
        .integer("POSTGRES.CONNECT_TIMEOUT_SECONDS", \.postgres.connectTimeoutSeconds, in: 1...3600),
        .integer("POSTGRES.STATEMENT_TIMEOUT_SECONDS", \.postgres.statementTimeoutSeconds, in: 0...86400),
        .port("POSTGRES.EXPORTER_PORT", \.postgres.exporterPort),
        .string("REDIS.HOST", \.redis.host),
        .port("REDIS.PORT", \.redis.port),
        .secret("REDIS.PASSWORD", \.redis.password),
        .integer("REDIS.DB", \.redis.database, in: 0...15),
        .integer("REDIS.POOL_MIN", \.redis.poolMinimum, in: 0...1000),
        .integer("REDIS.POOL_MAX", \.redis.poolMaximum, in: 1...1000),
        .integer("REDIS.TIMEOUT_SECONDS", \.redis.timeoutSeconds, in: 1...3600),
        .string("REDIS.SESSION_PREFIX", \.redis.sessionPrefix),
        .integer("REDIS.SESSION_TTL_SECONDS", \.redis.sessionTTLSeconds, in: 1...31_536_000),
        .port("REDIS.EXPORTER_PORT", \.redis.exporterPort),
        .string("NATS.USER", \.nats.user),
        .secret("NATS.PASSWORD", \.nats.password),
        .port("NATS.MONITOR_PORT", \.nats.monitorPort),
        .port("NATS.EXPORTER_PORT", \.nats.exporterPort),
        .integer("NATS.CLUSTER_SIZE", \.nats.clusterSize, in: 1...7),
        .port("NATS.CLUSTER_PORT", \.nats.clusterPort),
        .list("NATS.STREAMS", \.nats.streams, read: { $0.streams($1) }, describe: { $0.map(\.name).joined(separator: ", ") }),
        .list("NATS.KV_BUCKETS", \.nats.keyValueBuckets, read: { $0.keyValueBuckets($1) }, describe: { $0.map(\.name).joined(separator: ", ") }),
        .list("NATS.OBJECT_STORES", \.nats.objectStores, read: { $0.objectStores($1) }, describe: { $0.map(\.name).joined(separator: ", ") }),
        .port("GRAFANA.PORT", \.grafana.port),
        .string("GRAFANA.ADMIN_USER", \.grafana.adminUser),
        .secret("GRAFANA.ADMIN_PASSWORD", \.grafana.adminPassword),
    ]

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

    /// Every setting on its own line as `KEY: value`, sorted by key, secrets masked and URLs
    /// without passwords: safe to log.
    public var redactedDescription: String {
        (["ENVIRONMENT (active): \(activeEnvironment)"] + Settings.fields.map { "\($0.key): \($0.describe(self))" })
            .sorted().joined(separator: "\n")
    }

    /// Every setting with its printable (redacted) value and where it came from (a file and
    /// section, a variable, or "default"), in the order of ``fields``.
    public func describedSettings(_ result: SettingsLoader.Result) -> [(key: String, value: String, source: String)] {
        Settings.fields.map { field in
            (field.key, field.describe(self), result.source(of: field.path) ?? "default")
        }
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
            report(path, "expected a URL starting with \(schemes.map { $0 + "://" }.joined(separator: " or ")), got \(URLRedaction.redact(text, bareUserInfoIsSecret: true).debugDescription)")
            return fallback
        }
        return text
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

    mutating func streams(_ path: [String]) -> [NATSSettings.Stream]? {
        guard let tables = tables(path) else { return nil }
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

    mutating func keyValueBuckets(_ path: [String]) -> [NATSSettings.KeyValueBucket]? {
        guard let tables = tables(path) else { return nil }
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

    mutating func objectStores(_ path: [String]) -> [NATSSettings.ObjectStoreBucket]? {
        guard let tables = tables(path) else { return nil }
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
