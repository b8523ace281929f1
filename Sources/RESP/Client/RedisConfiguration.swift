import Logging
import Transport

/// How to reach and log in to a Redis server; usually parsed from a `redis://` or `rediss://` URL.
public struct RedisConfiguration: Sendable {
    /// Host name or IP address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// ACL user name (nil: the default user).
    public var user: String?
    /// Password (nil: no AUTH).
    public var password: String?
    /// Database number for SELECT.
    public var database: Int
    /// TLS context for `rediss://` (nil: plaintext).
    public var tls: TLSContext?
    /// Connect timeout.
    public var connectTimeout: Duration
    /// Deadline for each command's reply (nil: none; blocking commands get their own).
    public var commandTimeout: Duration?
    /// CLIENT SETNAME value.
    public var clientName: String?
    /// Parser limits for replies.
    public var limits: RESPParser.Limits
    /// Where connections log their lifecycle (connect, protocol chosen, TLS, losses, protocol
    /// errors) with their endpoint and id; never a password or a value. Silent by default.
    public var logger = Logger(label: "resp", factory: { _ in SwiftLogNoOpLogHandler() })
    /// How long a caller waiting for its reply may wait on its own thread before handing the
    /// wait to the reactor (fewer thread hand-offs for one connection used sequentially; see
    /// ``Transport/ConnectOptions/defaultInlineReadWait`` for the default). While the reactor is
    /// resuming other tasks (many connections busy at once, as in a loaded pool) it refuses the
    /// wait, so no thread is held from them. Zero turns it off.
    public var inlineReadWait: Duration = ConnectOptions.defaultInlineReadWait
    /// Redis Sentinel: when set, ``host`` and ``port`` are not used; each connection asks the
    /// sentinels for the master's address and checks its ROLE (see ``RedisSentinelConfiguration``).
    public var sentinel: RedisSentinelConfiguration?
    /// Client-side caching of read commands on ``RedisClient``'s shared connection (nil: off).
    /// Needs RESP3 (Redis 6 or later): the invalidations come on the same connection.
    public var clientCache: RedisClientCacheConfiguration?

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0,
        tls: TLSContext? = nil, connectTimeout: Duration = .seconds(5), commandTimeout: Duration? = nil,
        clientName: String? = nil, limits: RESPParser.Limits = .init()
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.clientName = clientName
        self.limits = limits
    }

    /// Parses `redis://[user[:password]@]host[:port][/db][?timeout=SECONDS&connect_timeout=SECONDS&name=NAME]`;
    /// `rediss://` turns TLS on with `tls` (the system trust store by default).
    /// `redis+sentinel://[user[:password]@]sentinel[:port][,sentinel[:port]…]/master-name[/db]`
    /// (`rediss+sentinel://` with TLS) goes through Redis Sentinel: the user and password are the
    /// master's, `sentinel_user` and `sentinel_password` in the query the sentinels' (26379 is
    /// the default port of a sentinel).
    public init(url: String, tls: TLSConfiguration = TLSConfiguration()) throws(RedisError) {
        self.init()
        let redacted = Redaction.url(url, bareUserInfoIsSecret: true)
        let parsed: ConnectionURL
        do throws(ConnectionURLError) {
            parsed = try ConnectionURL(parsing: url)
        } catch {
            throw RedisError(.usage, message: "invalid Redis URL \(redacted): \(error.message)")
        }
        let schemes = ["redis", "rediss", "redis+sentinel", "rediss+sentinel"]
        guard schemes.contains(parsed.scheme) else {
            throw RedisError(.usage, message: "not a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL: \(redacted)")
        }
        let viaSentinels = parsed.scheme.hasSuffix("+sentinel")
        if let password = parsed.password {
            user = parsed.user.flatMap { $0.isEmpty ? nil : $0 }
            self.password = password
        } else if let alone = parsed.user, !alone.isEmpty {
            // redis://password@host is how some clients pass a password alone.
            password = alone
        }
        var databaseText = parsed.path
        if viaSentinels {
            // redis+sentinel://[user:password@]sentinel[:port][,sentinel[:port]…]/master-name[/db]
            let parts = parsed.path.split(separator: "/", omittingEmptySubsequences: false)
            guard let name = parts.first, !name.isEmpty, parts.count <= 2 else {
                throw RedisError(.usage, message: "no master name in \(redacted) (redis+sentinel://sentinels/master-name[/db])")
            }
            databaseText = parts.count == 2 ? String(parts[1]) : ""
            let sentinels = parsed.hosts.filter { !$0.host.isEmpty }.map { RedisSentinelConfiguration.Address(host: $0.host, port: $0.port ?? 26379) }
            guard !sentinels.isEmpty else { throw RedisError(.usage, message: "no sentinel address in \(redacted)") }
            sentinel = RedisSentinelConfiguration(sentinels: sentinels, masterName: String(name))
        } else {
            guard parsed.hosts.count <= 1 else { throw RedisError(.usage, message: "more than one host in \(redacted)") }
            if let first = parsed.hosts.first {
                if !first.host.isEmpty { host = first.host }
                if let number = first.port { port = number }
            }
        }
        if !databaseText.isEmpty {
            guard let number = Int(databaseText), number >= 0 else { throw RedisError(.usage, message: "bad database number in \(redacted)") }
            database = number
        }
        for (key, value) in parsed.query {
            switch key {
            case "sentinel_password" where viaSentinels:
                sentinel?.password = value
            case "sentinel_user" where viaSentinels:
                sentinel?.user = value
            case "timeout":
                guard let seconds = Double(value), seconds > 0 else { throw RedisError(.usage, message: "bad timeout in \(redacted)") }
                commandTimeout = .milliseconds(Int64(seconds * 1000))
            case "connect_timeout":
                guard let seconds = Double(value), seconds > 0 else { throw RedisError(.usage, message: "bad connect_timeout in \(redacted)") }
                connectTimeout = .milliseconds(Int64(seconds * 1000))
            case "name":
                clientName = value
            case "db":
                guard let number = Int(value), number >= 0 else { throw RedisError(.usage, message: "bad db in \(redacted)") }
                database = number
            default:
                throw RedisError(.usage, message: "unknown option \(key) in \(redacted)")
            }
        }
        if parsed.scheme == "rediss" || parsed.scheme == "rediss+sentinel" {
            do {
                self.tls = try TLSContext(configuration: tls)
            } catch {
                throw RedisError(.usage, message: "TLS configuration failed: \(error)")
            }
        }
    }
}

/// Where the sentinels of a Redis Sentinel deployment are, and the name of the master they
/// watch. A connection asks them in turn (`SENTINEL get-master-addr-by-name`), connects to the
/// address the first one that knows gives, and checks with `ROLE` that it is the master; a
/// connection made so is closed when the server answers `-READONLY` (it was demoted by a
/// failover), so the next one is looked up again.
public struct RedisSentinelConfiguration: Sendable, Equatable {
    /// A sentinel's address.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int = 26379) {
            self.host = host
            self.port = port
        }

        public var description: String { "\(host):\(port)" }
    }

    /// The sentinels, asked in this order.
    public var sentinels: [Address]
    /// The name the sentinels know the master by (`sentinel monitor NAME …`).
    public var masterName: String
    /// The sentinels' ACL user, if they require one.
    public var user: String?
    /// The sentinels' password (`requirepass` of the sentinels), if they require one.
    public var password: String?

    public init(sentinels: [Address], masterName: String, user: String? = nil, password: String? = nil) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.user = user
        self.password = password
    }

    /// How to reach the sentinel at `address`: its credentials, and the TLS, timeout and
    /// logger of the data connections' `configuration`.
    func configuration(for address: Address, like configuration: RedisConfiguration) -> RedisConfiguration {
        var asking = RedisConfiguration(
            host: address.host, port: address.port, user: user, password: password, tls: configuration.tls,
            connectTimeout: configuration.connectTimeout, commandTimeout: configuration.connectTimeout)
        asking.logger = configuration.logger
        return asking
    }
}
