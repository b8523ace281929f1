import Logging
import PGWire
import RESP
import Settings

// The service's two pools, sized and configured from the settings, with the everyday calls on
// the pool itself: each borrows a connection for the one call.

extension ConnectionPool {
    /// A pool of the settings' size and acquire timeout; `configure` adjusts the rest.
    static func sized(
        _ name: String, minimum: Int, maximum: Int, acquireTimeout: Duration, logger: Logger, configure: (inout PoolConfiguration) -> Void,
        open: @escaping Factory
    ) -> ConnectionPool {
        var configuration = PoolConfiguration(minimumConnections: minimum, maximumConnections: maximum)
        configuration.acquireTimeout = acquireTimeout
        configure(&configuration)
        return ConnectionPool(name: name, configuration: configuration, logger: logger, factory: open)
    }
}

extension ConnectionPool where Connection == PostgresConnection {
    /// A PostgreSQL pool from DATABASE_URL and [postgres] (POOL_MIN, POOL_MAX, the timeouts);
    /// `configure` adjusts the rest.
    public static func postgres(
        settings: Settings, applicationName: String? = nil, logger: Logger, configure: (inout PoolConfiguration) -> Void = { _ in }
    ) throws(PostgresError) -> ConnectionPool<PostgresConnection> {
        // Inline read waits stay on: the reactor refuses them while it is resuming other tasks
        // (a pool under load), so only a lone user of the pool waits on its own thread.
        let connection = try PostgresConfiguration(settings: settings, applicationName: applicationName)
        return sized(
            "postgres", minimum: settings.postgres.poolMinimum, maximum: settings.postgres.poolMaximum,
            acquireTimeout: .seconds(settings.postgres.connectTimeoutSeconds), logger: logger, configure: configure
        ) { [connection] logger in
            var configured = connection
            configured.logger = logger
            return try await PostgresConnection.connect(configured)
        }
    }

    /// Runs one statement on a pooled connection and returns its rows and command tag.
    @discardableResult
    public func execute(_ query: PostgresQuery, timeout: Duration? = nil) async throws -> PostgresQueryResult {
        try await withConnection { try await $0.execute(query, timeout: timeout) }
    }

    /// Runs SQL text (one or more statements, no parameters) on a pooled connection.
    @discardableResult
    public func simpleQuery(_ sql: String, timeout: Duration? = nil) async throws -> [PostgresQueryResult] {
        try await withConnection { try await $0.simpleQuery(sql, timeout: timeout) }
    }

    /// Runs `body` in a transaction on a connection of its own: COMMIT when it returns,
    /// ROLLBACK when it throws.
    public func withTransaction<Result: Sendable>(
        isolation: PostgresIsolationLevel? = nil, readOnly: Bool = false, _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in
            try await connection.withTransaction(isolation: isolation, readOnly: readOnly, body)
        }
    }
}

extension ConnectionPool where Connection == RedisConnection {
    /// A Redis pool from REDIS_URL and [redis] (POOL_MIN, POOL_MAX, TIMEOUT_SECONDS);
    /// `configure` adjusts the rest.
    public static func redis(
        settings: Settings, clientName: String? = nil, logger: Logger, configure: (inout PoolConfiguration) -> Void = { _ in }
    ) throws(RedisError) -> ConnectionPool<RedisConnection> {
        // Inline read waits stay on, as for PostgreSQL above.
        let connection = try RedisConfiguration(settings: settings, clientName: clientName)
        return sized(
            "redis", minimum: settings.redis.poolMinimum, maximum: settings.redis.poolMaximum,
            acquireTimeout: .seconds(settings.redis.timeoutSeconds), logger: logger, configure: configure
        ) { [connection] logger in
            var configured = connection
            configured.logger = logger
            return try await RedisConnection.connect(configured)
        }
    }

    /// Sends one command on a pooled connection.
    @discardableResult
    public func send(_ arguments: [RESPArgument], timeout: Duration? = nil) async throws -> RESPValue {
        try await withConnection { try await $0.send(arguments, timeout: timeout) }
    }

    /// Sends commands in one write on a pooled connection and returns every reply in order.
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws -> [RESPValue] {
        try await withConnection { try await $0.pipeline(commands, timeout: timeout) }
    }
}
