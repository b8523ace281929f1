/// The project's typed settings, decoded from the resolved tree that ``SettingsLoader`` produces
/// (the same tree the Python workers get from Dynaconf). Missing keys take the defaults declared
/// below, which are also the values of the shipped `settings.toml`'s `[default]` (a test holds
/// them equal). Each field is declared once here and once in ``Settings/fields``, from which its
/// decoding, validation and redacted description all derive.
public struct Settings: Sendable {
    /// Where uploaded audio and exports are kept.
    public enum StorageType: String, Sendable, CaseIterable {
        /// The NATS object store.
        case nats
        /// A local folder (`STORAGE_PATH`).
        case local
        /// An S3-compatible bucket.
        case s3
    }

    // The service's settings (names as in the environment: TRANSCRIPTION_<NAME>).
    /// DATABASE_URL: the PostgreSQL connection string.
    public var databaseURL: String = "postgresql://transcription@127.0.0.1:5432/transcription"
    /// REDIS_URL.
    public var redisURL: String = "redis://127.0.0.1:6379/0"
    /// NATS_URL.
    public var natsURL: String = "nats://127.0.0.1:4222"
    /// NATS_JETSTREAM_ENABLED.
    public var natsJetStreamEnabled: Bool = true
    /// BOT_TOKEN: the Telegram bot token.
    public var botToken: Secret = Secret("")
    /// WEBHOOK_URL: the public URL Telegram calls; empty for long polling.
    public var webhookURL: String = ""
    /// WHISPER_MODEL_SIZE.
    public var whisperModelSize: String = "large-v3"
    /// PYANNOTE_TOKEN: the token for the diarization models.
    public var pyannoteToken: Secret = Secret("")
    /// MODEL_CACHE_DIR.
    public var modelCacheDirectory: String = "./models"
    /// STORAGE_TYPE.
    public var storageType: StorageType = .nats
    /// STORAGE_PATH (for local storage).
    public var storagePath: String = "./storage"
    /// PROMETHEUS_PORT.
    public var prometheusPort: Int = 9090
    /// LOG_LEVEL.
    public var logLevel: String = "INFO"
    /// SECRET_KEY: signs the web app's access tokens.
    public var secretKey: Secret = Secret("")
    /// ACCESS_TOKEN_EXPIRE_MINUTES.
    public var accessTokenExpireMinutes: Int = 10080
    /// DEBUG.
    public var debug: Bool = false
    /// ENVIRONMENT.
    public var environment: String = "development"
    /// MAX_FILE_SIZE_MB.
    public var maxFileSizeMB: Int = 200
    /// MAX_CONCURRENT_TASKS.
    public var maxConcurrentTasks: Int = 5
    /// ENABLE_DIARIZATION.
    public var enableDiarization: Bool = true
    /// ENABLE_WEBAPP.
    public var enableWebApp: Bool = true
    /// AUTO_DELETE_FILES.
    public var autoDeleteFiles: Bool = true
    /// AUTO_DELETE_TIMEOUT_HOURS.
    public var autoDeleteTimeoutHours: Int = 24

    // The infrastructure's settings.
    /// POSTGRES: the server, credentials and pool.
    public var postgres: PostgresSettings = PostgresSettings()
    /// REDIS: the server, credentials and pool.
    public var redis: RedisSettings = RedisSettings()
    /// NATS: credentials and the JetStream topology.
    public var nats: NATSSettings = NATSSettings()
    /// GRAFANA: the monitoring UI.
    public var grafana: GrafanaSettings = GrafanaSettings()

    /// The Dynaconf environment the settings were loaded for (`development`, `production` …).
    public var activeEnvironment: String = "DEVELOPMENT"

    /// The defaults: what an empty settings tree decodes to.
    public init() {}
}

/// PostgreSQL server, credentials and pool.
public struct PostgresSettings: Sendable {
    /// HOST.
    public var host: String = "127.0.0.1"
    /// PORT.
    public var port: Int = 5432
    /// USER.
    public var user: String = "transcription"
    /// PASSWORD.
    public var password: Secret = Secret("")
    /// DATABASE.
    public var database: String = "transcription"
    /// POOL_MIN: connections kept open.
    public var poolMinimum: Int = 1
    /// POOL_MAX: connections at most.
    public var poolMaximum: Int = 10
    /// CONNECT_TIMEOUT_SECONDS.
    public var connectTimeoutSeconds: Int = 10
    /// STATEMENT_TIMEOUT_SECONDS (0: none).
    public var statementTimeoutSeconds: Int = 0
    /// EXPORTER_PORT: where the local stack's postgres exporter serves /metrics.
    public var exporterPort: Int = 9187

    /// The defaults.
    public init() {}
}

/// Redis server, credentials and pool.
public struct RedisSettings: Sendable {
    /// HOST.
    public var host: String = "127.0.0.1"
    /// PORT.
    public var port: Int = 6379
    /// PASSWORD (empty: no AUTH).
    public var password: Secret = Secret("")
    /// DB.
    public var database: Int = 0
    /// POOL_MIN: connections kept open.
    public var poolMinimum: Int = 1
    /// POOL_MAX.
    public var poolMaximum: Int = 10
    /// TIMEOUT_SECONDS.
    public var timeoutSeconds: Int = 5
    /// SESSION_PREFIX: key prefix of the session store.
    public var sessionPrefix: String = "transcription:session:"
    /// SESSION_TTL_SECONDS.
    public var sessionTTLSeconds: Int = 86400
    /// EXPORTER_PORT: where the local stack's redis exporter serves /metrics.
    public var exporterPort: Int = 9121

    /// The defaults.
    public init() {}
}

/// NATS credentials and the JetStream topology the services rely on.
public struct NATSSettings: Sendable {
    /// A JetStream stream.
    public struct Stream: Sendable, Equatable {
        /// NAME.
        public var name: String
        /// SUBJECTS.
        public var subjects: [String]
        /// RETENTION: limits, workqueue or interest.
        public var retention: String
        /// MAX_AGE_SECONDS (0: unlimited).
        public var maxAgeSeconds: Int
        /// MAX_BYTES (-1: unlimited).
        public var maxBytes: Int
        /// STORAGE: file or memory.
        public var storage: String
    }

    /// A key-value bucket.
    public struct KeyValueBucket: Sendable, Equatable {
        /// NAME (its stream is KV_<NAME>).
        public var name: String
        /// HISTORY: values kept per key.
        public var history: Int
        /// TTL_SECONDS (0: none).
        public var ttlSeconds: Int
        /// MAX_VALUE_SIZE in bytes (-1: the server's max payload).
        public var maxValueSize: Int
    }

    /// An object-store bucket.
    public struct ObjectStoreBucket: Sendable, Equatable {
        /// NAME (its stream is OBJ_<NAME>).
        public var name: String
        /// TTL_SECONDS (0: none).
        public var ttlSeconds: Int
        /// MAX_BYTES (-1: unlimited).
        public var maxBytes: Int
    }

    /// USER (empty: no user/password auth).
    public var user = ""
    /// PASSWORD.
    public var password = Secret("")
    /// MONITOR_PORT: the local stack's nats-server monitoring port (/varz, /jsz, /healthz).
    public var monitorPort = 8222
    /// EXPORTER_PORT: where the local stack's NATS exporter serves /metrics.
    public var exporterPort = 7777
    /// CLUSTER_SIZE: nats-server nodes of the local stack (1, or 3 and more for a cluster whose
    /// streams are replicated three times). Node i listens on the NATS_URL port + i.
    public var clusterSize = 1
    /// CLUSTER_PORT: the first node's route port (node i: + i).
    public var clusterPort = 6222
    /// STREAMS.
    public var streams = [
        Stream(name: "EVENTS", subjects: ["events.>"], retention: "limits", maxAgeSeconds: 604_800, maxBytes: -1, storage: "file"),
        Stream(name: "TASKS", subjects: ["tasks.>"], retention: "workqueue", maxAgeSeconds: 86_400, maxBytes: -1, storage: "file"),
    ]
    /// KV_BUCKETS.
    public var keyValueBuckets = [KeyValueBucket(name: "STORAGE", history: 1, ttlSeconds: 0, maxValueSize: -1)]
    /// OBJECT_STORES.
    public var objectStores = [
        ObjectStoreBucket(name: "AUDIO", ttlSeconds: 86_400, maxBytes: -1),
        ObjectStoreBucket(name: "EXPORTS", ttlSeconds: 604_800, maxBytes: -1),
    ]

    /// The defaults.
    public init() {}
}

/// Grafana's port and admin credentials.
public struct GrafanaSettings: Sendable {
    /// PORT.
    public var port: Int = 3000
    /// ADMIN_USER.
    public var adminUser: String = "admin"
    /// ADMIN_PASSWORD.
    public var adminPassword: Secret = Secret("")

    /// The defaults.
    public init() {}
}

/// One thing wrong with the settings: the key, where its value came from, what was expected.
public struct SettingsIssue: Sendable, Equatable, CustomStringConvertible {
    /// The dotted key, as in the environment (`POSTGRES.PORT`).
    public var key: String
    /// The file and section or the variable, or "default".
    public var source: String
    /// What is wrong.
    public var message: String

    /// `KEY (from SOURCE): message`.
    public var description: String { "\(key) (from \(source)): \(message)" }
}

/// Every problem found while decoding and validating, reported together.
public struct SettingsValidationError: Error, Sendable, CustomStringConvertible {
    /// The problems, in the order of the fields.
    public var issues: [SettingsIssue]

    /// One line per problem.
    public var description: String {
        "invalid settings (\(issues.count) problem\(issues.count == 1 ? "" : "s")):\n"
            + issues.map { "  - \($0)" }.joined(separator: "\n")
    }
}
