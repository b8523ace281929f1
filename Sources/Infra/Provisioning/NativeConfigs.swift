import Foundation
import Settings

/// What a native stack is for.
public enum StackProfile: String, Sendable, CaseIterable {
    /// The development stack: every server, the exporters and Prometheus; migrations and the
    /// NATS topology applied.
    case full
    /// The test suite's servers: PostgreSQL, Redis and NATS only, durability traded for speed
    /// (no fsync), Redis's DEBUG command on loopback; no migrations, no topology.
    case test
}

/// The configuration files native mode writes under `.infra/` for the servers it starts, rendered
/// from the settings: everything on loopback, on the settings' ports, with data and logs under
/// the root. Pure: the files are values; the shell writes them.
public struct NativeConfigs: Sendable {
    /// `.infra/` (or a test's temporary root).
    public let root: String
    public let postgresPort: Int
    public let redisPort: Int
    public let natsPort: Int
    public let natsMonitorPort: Int
    public let prometheusPort: Int
    /// The port of the built-in NATS exporter, and of the PostgreSQL and Redis exporters.
    public let natsExporterPort: Int
    public let postgresExporterPort: Int
    public let redisExporterPort: Int
    /// The first node's route port; node i listens on it + i - 1 (clusters only).
    public let natsClusterPort: Int
    /// NATS nodes: 1, or a cluster of 3 or more.
    public let natsNodes: Int
    let redisPassword: String
    let natsUser: String
    let natsPassword: String

    public let profile: StackProfile

    public init(settings: Settings, root: String, natsNodes: Int? = nil, profile: StackProfile = .full) {
        self.root = root
        self.profile = profile
        postgresPort = settings.postgres.port
        redisPort = settings.redis.port
        natsPort = URLComponents(string: settings.natsURL.split(separator: ",").first.map(String.init) ?? "")?.port ?? 4222
        natsMonitorPort = settings.nats.monitorPort
        prometheusPort = settings.prometheusPort
        natsExporterPort = settings.nats.exporterPort
        postgresExporterPort = settings.postgres.exporterPort
        redisExporterPort = settings.redis.exporterPort
        natsClusterPort = settings.nats.clusterPort
        self.natsNodes = max(1, natsNodes ?? settings.nats.clusterSize)
        redisPassword = settings.redis.password.value
        natsUser = settings.nats.user
        natsPassword = settings.nats.password.value
    }

    /// A path under the root.
    public func path(_ relative: String) -> String { (root as NSString).appendingPathComponent(relative) }

    /// redis.conf: loopback, the password when one is set, AOF every second, an eviction policy
    /// for keys with a TTL (sessions), data and log under the root; runs in the foreground
    /// (native mode detaches it itself and keeps its pid).
    public var redis: String {
        var lines = [
            "bind 127.0.0.1", "port \(redisPort)", "protected-mode yes", "daemonize no",
            "dir \(quoted(path("redis")))", "logfile \(quoted(path("logs/redis.log")))",
            "appendonly yes", "appendfsync everysec", "save \"\"",
            "maxmemory 256mb", "maxmemory-policy volatile-lru",
        ]
        if !redisPassword.isEmpty { lines.append("requirepass \(quoted(redisPassword))") }
        if profile == .test { lines.append("enable-debug-command local") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// nats.conf (single server): as the repository's server.conf, on loopback, with JetStream's
    /// store under the root and the settings' user when one is set.
    public var nats: String { natsNode(1) }

    /// The configuration of node `node` (1-based): in a cluster each node has its own ports
    /// (the first node's + node - 1), store and name, and routes to every node.
    public func natsNode(_ node: Int) -> String {
        let name = natsNodes == 1 ? "nats" : "nats-\(node)"
        var text = """
            server_name: transcription-\(name)
            listen: 127.0.0.1:\(natsPort + node - 1)
            http: 127.0.0.1:\(natsMonitorPort + node - 1)
            max_payload: 1MB
            max_connections: 1024
            write_deadline: "10s"
            jetstream {
                store_dir: \(quoted(path("nats/\(name)")))
                max_memory_store: 256MB
                max_file_store: 20GB
            }

            """
        if natsNodes > 1 {
            let routes = (0..<natsNodes).map { "nats-route://127.0.0.1:\(natsClusterPort + $0)" }.joined(separator: ", ")
            text += """
                cluster {
                    name: transcription
                    listen: 127.0.0.1:\(natsClusterPort + node - 1)
                    routes: [\(routes)]
                }

                """
        }
        if !natsUser.isEmpty {
            text += """
                authorization {
                    user: \(quoted(natsUser))
                    password: \(quoted(natsPassword))
                }

                """
        }
        return text
    }

    /// prometheus.yml: the jobs of config/prometheus/prometheus.yml at their native addresses.
    public var prometheus: String {
        func job(_ name: String, _ port: Int) -> String {
            "  - job_name: \(name)\n    static_configs:\n      - targets: [\"127.0.0.1:\(port)\"]\n"
        }
        return "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n\nscrape_configs:\n"
            + job("prometheus", prometheusPort) + job("postgres", postgresExporterPort) + job("redis", redisExporterPort)
            + job("nats", natsExporterPort)
    }

    /// The server settings PostgreSQL gets on its command line (`-c name=value`): loopback, the
    /// port, the socket under the root, SCRAM for passwords, logs to standard error (our log file).
    public var postgresArguments: [String] {
        ([
            "listen_addresses=127.0.0.1", "port=\(postgresPort)", "unix_socket_directories=\(path("run"))",
            "password_encryption=scram-sha-256", "logging_collector=off", "max_connections=200",
        ] + (profile == .test ? ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] : [])).flatMap { ["-c", $0] }
    }

    /// pg_hba.conf: SCRAM for every user over TCP and the socket; nothing else.
    public var postgresHBA: String {
        """
        # TYPE  DATABASE  USER  ADDRESS       METHOD
        local   all       all                 scram-sha-256
        host    all       all   127.0.0.1/32  scram-sha-256

        """
    }

    /// Every file with its path under the root.
    public var files: [(path: String, contents: String)] {
        [("redis/redis.conf", redis)]
            + (1...natsNodes).map { ("nats/\(natsNodes == 1 ? "nats" : "nats-\($0)").conf", natsNode($0)) }
            + (profile == .full ? [("prometheus/prometheus.yml", prometheus)] : [])
    }

    /// A double-quoted value for redis.conf and nats.conf (backslashes and quotes escaped).
    func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
