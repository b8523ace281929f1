/// The project's typed settings, decoded from the resolved tree that ``SettingsLoader`` produces
/// (the same tree the Python workers get from Dynaconf). Missing keys take the defaults below,
/// which are also the values of the shipped `settings.toml`.
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
    public var databaseURL: String
    /// REDIS_URL.
    public var redisURL: String
    /// NATS_URL.
    public var natsURL: String
    /// NATS_JETSTREAM_ENABLED.
    public var natsJetStreamEnabled: Bool
    /// BOT_TOKEN: the Telegram bot token.
    public var botToken: Secret
    /// WEBHOOK_URL: the public URL Telegram calls; empty for long polling.
    public var webhookURL: String
    /// WHISPER_MODEL_SIZE.
    public var whisperModelSize: String
    /// PYANNOTE_TOKEN: the token for the diarization models.
    public var pyannoteToken: Secret
    /// MODEL_CACHE_DIR.
    public var modelCacheDirectory: String
    /// STORAGE_TYPE.
    public var storageType: StorageType
    /// STORAGE_PATH (for local storage).
    public var storagePath: String
    /// PROMETHEUS_PORT.
    public var prometheusPort: Int
    /// LOG_LEVEL.
    public var logLevel: String
    /// SECRET_KEY: signs the web app's access tokens.
    public var secretKey: Secret
    /// ACCESS_TOKEN_EXPIRE_MINUTES.
    public var accessTokenExpireMinutes: Int
    /// DEBUG.
    public var debug: Bool
    /// ENVIRONMENT.
    public var environment: String
    /// MAX_FILE_SIZE_MB.
    public var maxFileSizeMB: Int
    /// MAX_CONCURRENT_TASKS.
    public var maxConcurrentTasks: Int
    /// ENABLE_DIARIZATION.
    public var enableDiarization: Bool
    /// ENABLE_WEBAPP.
    public var enableWebApp: Bool
    /// AUTO_DELETE_FILES.
    public var autoDeleteFiles: Bool
    /// AUTO_DELETE_TIMEOUT_HOURS.
    public var autoDeleteTimeoutHours: Int

    // The infrastructure's settings.
    /// POSTGRES: the server, credentials and pool.
    public var postgres: PostgresSettings
    /// REDIS: the server, credentials and pool.
    public var redis: RedisSettings
    /// NATS: credentials and the JetStream topology.
    public var nats: NATSSettings
    /// GRAFANA: the monitoring UI.
    public var grafana: GrafanaSettings

    /// The Dynaconf environment the settings were loaded for (`development`, `production` …).
    public var activeEnvironment: String
}

/// PostgreSQL server, credentials and pool.
public struct PostgresSettings: Sendable {
    /// HOST.
    public var host: String
    /// PORT.
    public var port: Int
    /// USER.
    public var user: String
    /// PASSWORD.
    public var password: Secret
    /// DATABASE.
    public var database: String
    /// POOL_MIN: connections kept open.
    public var poolMinimum: Int
    /// POOL_MAX: connections at most.
    public var poolMaximum: Int
    /// CONNECT_TIMEOUT_SECONDS.
    public var connectTimeoutSeconds: Int
    /// STATEMENT_TIMEOUT_SECONDS (0: none).
    public var statementTimeoutSeconds: Int
}

/// Redis server, credentials and pool.
public struct RedisSettings: Sendable {
    /// HOST.
    public var host: String
    /// PORT.
    public var port: Int
    /// PASSWORD (empty: no AUTH).
    public var password: Secret
    /// DB.
    public var database: Int
    /// POOL_MAX.
    public var poolMaximum: Int
    /// TIMEOUT_SECONDS.
    public var timeoutSeconds: Int
    /// SESSION_PREFIX: key prefix of the session store.
    public var sessionPrefix: String
    /// SESSION_TTL_SECONDS.
    public var sessionTTLSeconds: Int
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
    public var user: String
    /// PASSWORD.
    public var password: Secret
    /// STREAMS.
    public var streams: [Stream]
    /// KV_BUCKETS.
    public var keyValueBuckets: [KeyValueBucket]
    /// OBJECT_STORES.
    public var objectStores: [ObjectStoreBucket]
}

/// Grafana's port and admin credentials.
public struct GrafanaSettings: Sendable {
    /// PORT.
    public var port: Int
    /// ADMIN_USER.
    public var adminUser: String
    /// ADMIN_PASSWORD.
    public var adminPassword: Secret
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
