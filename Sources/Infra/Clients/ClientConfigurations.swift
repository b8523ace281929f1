import NATSProto
import PGWire
import RESP
import Settings

// The clients' configurations from the typed settings. The URL settings (DATABASE_URL, REDIS_URL,
// NATS_URL) name the servers; the credentials and limits of [postgres], [redis] and [nats] fill in
// what a URL leaves out — a password in the URL wins, as it does for the Python workers.

extension PostgresConfiguration {
    /// DATABASE_URL, with POSTGRES.PASSWORD when the URL carries no password, the connect timeout
    /// of POSTGRES.CONNECT_TIMEOUT_SECONDS unless the URL sets `connect_timeout`, and
    /// POSTGRES.STATEMENT_TIMEOUT_SECONDS (when not 0) as the session's `statement_timeout`.
    public init(settings: Settings, applicationName: String? = nil) throws(PostgresError) {
        try self.init(connectionString: settings.databaseURL)
        if password == nil, !settings.postgres.password.isEmpty { password = settings.postgres.password.value }
        if !settings.databaseURL.contains("connect_timeout") { connectTimeout = .seconds(settings.postgres.connectTimeoutSeconds) }
        if settings.postgres.statementTimeoutSeconds > 0 {
            runtimeParameters.append(("statement_timeout", String(settings.postgres.statementTimeoutSeconds * 1000)))
        }
        if let applicationName { self.applicationName = applicationName }
    }
}

extension RedisConfiguration {
    /// REDIS_URL, with REDIS.PASSWORD when the URL carries none and REDIS.TIMEOUT_SECONDS as the
    /// command timeout unless the URL sets `timeout`.
    public init(settings: Settings, clientName: String? = nil) throws(RedisError) {
        try self.init(url: settings.redisURL)
        if password == nil, !settings.redis.password.isEmpty { password = settings.redis.password.value }
        if commandTimeout == nil { commandTimeout = .seconds(settings.redis.timeoutSeconds) }
        if let clientName { self.clientName = clientName }
    }
}

extension NATSConfiguration {
    /// NATS_URL (several servers separated by commas), with NATS.USER and NATS.PASSWORD when the
    /// user is set; a URL's own credentials are used for its server.
    public init(settings: Settings, name: String? = nil) {
        self.init(servers: settings.natsURL.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty })
        if !settings.nats.user.isEmpty {
            user = settings.nats.user
            password = settings.nats.password.value
        }
        self.name = name
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}
