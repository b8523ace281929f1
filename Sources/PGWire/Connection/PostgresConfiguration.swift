import Logging
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// How to reach and log in to a PostgreSQL server; usually parsed from a libpq connection string.
public struct PostgresConfiguration: Sendable {
    /// One server to try: a host name or IP address, or a Unix socket directory (starting with `/`).
    public struct Host: Sendable, Equatable, CustomStringConvertible {
        /// Host name, IP address, or socket directory.
        public var host: String
        /// TCP port, or the socket file's number (`.s.PGSQL.<port>`).
        public var port: Int

        /// Creates a host entry.
        public init(_ host: String, port: Int = 5432) {
            self.host = host
            self.port = port
        }

        /// Whether this is a Unix socket directory.
        public var isUnixSocket: Bool { host.hasPrefix("/") || host.hasPrefix("@") }

        /// The transport endpoint.
        public var endpoint: Endpoint {
            isUnixSocket ? .unix(path: "\(host)/.s.PGSQL.\(port)") : .tcp(host: host, port: port)
        }

        /// `host:port` or the socket path.
        public var description: String { endpoint.description }
    }

    /// libpq's sslmode: whether TLS is tried, required, and how the server is verified.
    public enum SSLMode: String, Sendable, CaseIterable {
        /// Never TLS.
        case disable
        /// Plaintext first; TLS only if the server insists.
        case allow
        /// TLS if the server offers it, else plaintext (libpq's default). No verification.
        case prefer
        /// TLS or fail; the certificate is not verified.
        case require
        /// TLS; the chain must lead to a trusted root; the host name is not checked.
        case verifyCA = "verify-ca"
        /// TLS; chain and host name verified.
        case verifyFull = "verify-full"
    }

    /// How TLS starts: after an SSLRequest ('postgres'), or at once (PostgreSQL 17+'s 'direct').
    public enum SSLNegotiation: String, Sendable {
        /// SSLRequest first.
        case postgres
        /// The TLS handshake at once, with ALPN `postgresql`.
        case direct
    }

    /// libpq's channel_binding: whether SCRAM binds to the TLS channel.
    public enum ChannelBinding: String, Sendable {
        /// Never (plain SCRAM-SHA-256).
        case disable
        /// SCRAM-SHA-256-PLUS when on TLS and offered (the default).
        case prefer
        /// SCRAM-SHA-256-PLUS or fail: no other authentication method is accepted.
        case require
    }

    /// Servers to try, in order; the first that accepts the connection wins.
    public var hosts: [Host]
    /// The role to log in as.
    public var user: String
    /// The password (nil: none; a server asking for one then fails authentication).
    public var password: String?
    /// The database (nil: the user's name).
    public var database: String?
    /// `application_name`, shown in `pg_stat_activity`.
    public var applicationName: String?
    /// Command-line options sent as the `options` startup parameter (`-c name=value …`).
    public var options: String?
    /// Other run-time parameters sent at startup (`search_path`, `TimeZone` …), in order.
    public var runtimeParameters: [(name: String, value: String)]
    /// TLS mode.
    public var sslMode: SSLMode
    /// TLS start-up style.
    public var sslNegotiation: SSLNegotiation
    /// CA file for verify-ca / verify-full (nil: the system trust store); `system` means the same.
    public var sslRootCertificate: String?
    /// Client certificate and key files, when the server asks for one.
    public var sslClientCertificate: TLSConfiguration.ClientCertificate?
    /// SCRAM channel binding.
    public var channelBinding: ChannelBinding
    /// Limit on each connection attempt (per host).
    public var connectTimeout: Duration
    /// Capacity of the per-connection prepared-statement cache (0 turns it off, for PgBouncer's
    /// transaction mode).
    public var statementCacheCapacity: Int
    /// The largest message accepted from the server.
    public var maximumMessageSize: Int
    /// Which kind of server a connection must reach, checked on each host in turn (libpq's
    /// `target_session_attrs`; `any` by default).
    public var targetSessionAttributes: TargetSessionAttributes = .any
    /// Whether the hosts are tried in a random order (libpq's `load_balance_hosts`), spreading
    /// connections over equivalent servers; in the given order by default.
    public var loadBalanceHosts: LoadBalanceHosts = .disable

    /// libpq's `target_session_attrs`.
    public enum TargetSessionAttributes: String, Sendable, CaseIterable {
        /// Any server that accepts the connection.
        case any
        /// A session that can write: `transaction_read_only` off.
        case readWrite = "read-write"
        /// A read-only session: `transaction_read_only` on (a standby, or a server so configured).
        case readOnly = "read-only"
        /// A server not in recovery (not a hot standby).
        case primary
        /// A server in recovery (a hot standby).
        case standby
        /// A standby if one of the hosts is; otherwise any.
        case preferStandby = "prefer-standby"
    }

    /// libpq's `load_balance_hosts`.
    public enum LoadBalanceHosts: String, Sendable, CaseIterable {
        /// The hosts in the given order.
        case disable
        /// The hosts in a random order, drawn anew for each connection.
        case random
    }

    /// The oldest protocol version the connection accepts (libpq's `min_protocol_version`).
    public var minimumProtocolVersion: ProtocolVersion = .v3_0
    /// The protocol version asked for at startup (libpq's `max_protocol_version`; 3.0 by default,
    /// as libpq 18's). A server that speaks only an older one answers NegotiateProtocolVersion and
    /// the session goes on in that version, unless it is older than the minimum.
    public var maximumProtocolVersion: ProtocolVersion = .v3_0

    /// A version of the frontend/backend protocol.
    public struct ProtocolVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The major version (3).
        public var major: Int
        /// The minor version: 0 (PostgreSQL 7.4 on) or 2 (PostgreSQL 18 on: cancel keys of up to
        /// 256 bytes).
        public var minor: Int

        /// Protocol 3.0.
        public static let v3_0 = ProtocolVersion(major: 3, minor: 0)
        /// Protocol 3.2.
        public static let v3_2 = ProtocolVersion(major: 3, minor: 2)
        /// The newest version this library speaks.
        public static let latest = v3_2

        /// Creates a version.
        public init(major: Int, minor: Int) {
            self.major = major
            self.minor = minor
        }

        /// Parses `3.0`, `3.2` or `latest`, as libpq's `min_protocol_version` and
        /// `max_protocol_version` accept them (3.1 was never a protocol version).
        public init?(parsing text: String) {
            switch text {
            case "3.0": self = .v3_0
            case "3.2": self = .v3_2
            case "latest": self = .latest
            default: return nil
            }
        }

        /// The StartupMessage's version field.
        var code: Int32 { Int32(major << 16 | minor) }

        public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool { (lhs.major, lhs.minor) < (rhs.major, rhs.minor) }

        public var description: String { "\(major).\(minor)" }
    }
    /// How long a cancelled or timed-out call waits for the server to end its statement before
    /// the call ends anyway (closing the connection when a CancelRequest went unanswered).
    /// 5 seconds: a cancel takes effect at the backend's next interrupt check, milliseconds on a
    /// healthy server; a server that has not acted after seconds is stuck or unreachable.
    public var cancelGracePeriod: Duration = .seconds(5)
    /// How long a caller waiting for its reply may wait on its own thread before handing the
    /// wait to the reactor (fewer thread hand-offs for one connection used sequentially; see
    /// ``Transport/ConnectOptions/defaultInlineReadWait`` for the default). While the reactor is
    /// resuming other tasks (many connections busy at once, as in a loaded pool) it refuses the
    /// wait, so no thread is held from them. Zero turns it off.
    public var inlineReadWait: Duration = ConnectOptions.defaultInlineReadWait
    /// Where the connection logs its lifecycle (connect, TLS, authentication method, losses,
    /// server and protocol errors) with its endpoint and connection id; never a password or a
    /// row. Silent by default.
    public var logger: Logger
    /// A fixed SCRAM client nonce, so tests can replay a captured exchange (never set otherwise).
    var scramNonceForTesting: String?

    /// Creates a configuration.
    public init(
        hosts: [Host] = [Host("localhost")], user: String = PostgresConfiguration.defaultUser, password: String? = nil,
        database: String? = nil, applicationName: String? = nil, sslMode: SSLMode = .prefer,
        channelBinding: ChannelBinding = .prefer, connectTimeout: Duration = .seconds(10)
    ) {
        self.hosts = hosts
        self.user = user
        self.password = password
        self.database = database
        self.applicationName = applicationName
        self.options = nil
        self.runtimeParameters = []
        self.sslMode = sslMode
        self.sslNegotiation = .postgres
        self.sslRootCertificate = nil
        self.sslClientCertificate = nil
        self.channelBinding = channelBinding
        self.connectTimeout = connectTimeout
        self.statementCacheCapacity = 256
        self.maximumMessageSize = 1 << 30
        self.logger = Logger(label: "pgwire", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    /// The operating system user's name, libpq's default role.
    public static var defaultUser: String {
        if let name = getenv("USER").map({ String(cString: $0) }), !name.isEmpty { return name }
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return "postgres"
    }

    /// Parses a libpq connection string: a `postgresql://` (or `postgres://`) URI, or the
    /// `keyword=value` form. Recognised keywords: host, hostaddr (as host), port, user, password,
    /// dbname, application_name, fallback_application_name, options, sslmode, sslnegotiation,
    /// sslrootcert, sslcert, sslkey, channel_binding, connect_timeout, target_session_attrs,
    /// load_balance_hosts, min_protocol_version, max_protocol_version, statement_cache_capacity.
    public init(connectionString: String) throws(PostgresError) {
        self.init()
        let pairs: [(String, String)]
        if connectionString.hasPrefix("postgresql://") || connectionString.hasPrefix("postgres://") {
            pairs = try Self.uriPairs(connectionString)
        } else {
            pairs = try Self.keywordPairs(connectionString)
        }
        var hostList: [String] = []
        var portList: [String] = []
        var clientCertificate: String?
        var clientKey: String?
        var sawUser = false
        for (keyword, value) in pairs {
            switch keyword {
            case "host", "hostaddr":
                hostList = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            case "port":
                portList = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            case "user":
                user = value
                sawUser = true
            case "password": password = value
            case "dbname": database = value.isEmpty ? nil : value
            case "application_name": applicationName = value
            case "fallback_application_name": if applicationName == nil { applicationName = value }
            case "options": options = value
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else { throw Self.invalid("sslmode", value) }
                sslMode = mode
            case "sslnegotiation":
                guard let negotiation = SSLNegotiation(rawValue: value) else { throw Self.invalid("sslnegotiation", value) }
                sslNegotiation = negotiation
            case "sslrootcert": sslRootCertificate = value
            case "sslcert": clientCertificate = value
            case "sslkey": clientKey = value
            case "channel_binding":
                guard let binding = ChannelBinding(rawValue: value) else { throw Self.invalid("channel_binding", value) }
                channelBinding = binding
            case "connect_timeout":
                guard let seconds = Int(value) else { throw Self.invalid("connect_timeout", value) }
                // libpq: zero or negative waits indefinitely; 1 is raised to 2.
                connectTimeout = seconds <= 0 ? .seconds(365 * 24 * 3600) : .seconds(max(2, seconds))
            case "target_session_attrs":
                guard let attributes = TargetSessionAttributes(rawValue: value) else { throw Self.invalid("target_session_attrs", value) }
                targetSessionAttributes = attributes
            case "load_balance_hosts":
                guard let mode = LoadBalanceHosts(rawValue: value) else { throw Self.invalid("load_balance_hosts", value) }
                loadBalanceHosts = mode
            case "min_protocol_version":
                guard let version = ProtocolVersion(parsing: value) else { throw Self.invalid("min_protocol_version", value) }
                minimumProtocolVersion = version
            case "max_protocol_version":
                guard let version = ProtocolVersion(parsing: value) else { throw Self.invalid("max_protocol_version", value) }
                maximumProtocolVersion = version
            case "statement_cache_capacity":
                guard let capacity = Int(value), capacity >= 0 else { throw Self.invalid("statement_cache_capacity", value) }
                statementCacheCapacity = capacity
            default:
                throw PostgresError(.usage, message: "unknown connection option \"\(keyword)\"")
            }
        }
        if !sawUser { user = Self.defaultUser }
        if let clientCertificate {
            sslClientCertificate = .init(certificateChainFile: clientCertificate, privateKeyFile: clientKey ?? clientCertificate)
        }
        if hostList.isEmpty { hostList = [""] }
        guard portList.count <= 1 || portList.count == hostList.count else {
            throw PostgresError(.usage, message: "\(portList.count) ports for \(hostList.count) hosts")
        }
        var resolved: [Host] = []
        for (index, name) in hostList.enumerated() {
            let portText = portList.isEmpty ? "" : (portList.count == 1 ? portList[0] : portList[index])
            var port = 5432
            if !portText.isEmpty {
                guard let value = Int(portText), (1...65535).contains(value) else { throw Self.invalid("port", portText) }
                port = value
            }
            resolved.append(Host(name.isEmpty ? "localhost" : name, port: port))
        }
        hosts = resolved
        if minimumProtocolVersion > maximumProtocolVersion {
            throw PostgresError(
                .usage, message: "min_protocol_version \(minimumProtocolVersion) is newer than max_protocol_version \(maximumProtocolVersion)")
        }
    }

    /// The connection string's meaning with the password masked, for logs.
    public var redactedDescription: String {
        var parts = ["host=\(hosts.map(\.description).joined(separator: ","))", "user=\(user)"]
        if let database { parts.append("dbname=\(database)") }
        if password != nil { parts.append("password=***") }
        parts.append("sslmode=\(sslMode.rawValue)")
        if channelBinding != .prefer { parts.append("channel_binding=\(channelBinding.rawValue)") }
        if let applicationName { parts.append("application_name=\(applicationName)") }
        return parts.joined(separator: " ")
    }

    /// The database name the server will use.
    var effectiveDatabase: String { database ?? user }

    private static func invalid(_ keyword: String, _ value: String) -> PostgresError {
        PostgresError(.usage, message: "invalid \(keyword) value \"\(value)\"")
    }

    // MARK: - Parsing

    /// `keyword = value` pairs separated by whitespace; values may be single-quoted, with `\'`
    /// and `\\` escapes inside or outside quotes.
    static func keywordPairs(_ text: String) throws(PostgresError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        var characters = Array(text.unicodeScalars)[...]
        func skipSpaces() { while let first = characters.first, first.properties.isWhitespace { characters.removeFirst() } }
        while true {
            skipSpaces()
            guard !characters.isEmpty else { break }
            var keyword = ""
            while let first = characters.first, first != "=", !first.properties.isWhitespace {
                keyword.unicodeScalars.append(first)
                characters.removeFirst()
            }
            skipSpaces()
            guard characters.first == "=" else {
                throw PostgresError(.usage, message: "missing \"=\" after \"\(keyword)\" in the connection string")
            }
            characters.removeFirst()
            skipSpaces()
            var value = ""
            if characters.first == "'" {
                characters.removeFirst()
                var closed = false
                while let first = characters.popFirst() {
                    if first == "\\", let escaped = characters.popFirst() {
                        value.unicodeScalars.append(escaped)
                    } else if first == "'" {
                        closed = true
                        break
                    } else {
                        value.unicodeScalars.append(first)
                    }
                }
                guard closed else { throw PostgresError(.usage, message: "unterminated quoted value for \"\(keyword)\"") }
            } else {
                while let first = characters.first, !first.properties.isWhitespace {
                    characters.removeFirst()
                    if first == "\\", let escaped = characters.popFirst() {
                        value.unicodeScalars.append(escaped)
                    } else {
                        value.unicodeScalars.append(first)
                    }
                }
            }
            pairs.append((keyword, value))
        }
        return pairs
    }

    /// `postgresql://[user[:password]@][host[:port][,host[:port]…]][/dbname][?keyword=value&…]`,
    /// percent-decoded; hosts may be `[IPv6]` or a percent-encoded socket directory.
    static func uriPairs(_ uri: String) throws(PostgresError) -> [(String, String)] {
        let url: ConnectionURL
        do throws(ConnectionURLError) {
            url = try ConnectionURL(parsing: uri)
        } catch {
            throw PostgresError(.usage, message: "invalid connection URI: \(error.message)")
        }
        var pairs: [(String, String)] = []
        if let user = url.user, !user.isEmpty { pairs.append(("user", user)) }
        if let password = url.password { pairs.append(("password", password)) }
        if !url.hosts.isEmpty {
            pairs.append(("host", url.hosts.map(\.host).joined(separator: ",")))
            if url.hosts.contains(where: { $0.port != nil }) {
                pairs.append(("port", url.hosts.map { $0.port.map(String.init) ?? "" }.joined(separator: ",")))
            }
        }
        if !url.path.isEmpty { pairs.append(("dbname", url.path)) }
        for (key, value) in url.query {
            // libpq reads JDBC's ssl=true as sslmode=require.
            if key == "ssl" && value == "true" {
                pairs.append(("sslmode", "require"))
            } else {
                pairs.append((key, value))
            }
        }
        return pairs
    }
}
