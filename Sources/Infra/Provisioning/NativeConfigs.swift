import Foundation
import Settings

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
    let redisPassword: String
    let natsUser: String
    let natsPassword: String

    public init(settings: Settings, root: String, natsMonitorPort: Int = 8222, prometheusPort: Int = 9090) {
        self.root = root
        postgresPort = settings.postgres.port
        redisPort = settings.redis.port
        natsPort = URLComponents(string: settings.natsURL.split(separator: ",").first.map(String.init) ?? "")?.port ?? 4222
        self.natsMonitorPort = natsMonitorPort
        self.prometheusPort = prometheusPort
        natsExporterPort = 7777
        postgresExporterPort = 9187
        redisExporterPort = 9121
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
        return lines.joined(separator: "\n") + "\n"
    }

    /// nats.conf: as the repository's server.conf, on loopback, with JetStream's store under the
    /// root and the settings' user when one is set.
    public var nats: String {
        var text = """
            server_name: transcription-nats
            listen: 127.0.0.1:\(natsPort)
            http: 127.0.0.1:\(natsMonitorPort)
            max_payload: 1MB
            max_connections: 1024
            write_deadline: "10s"
            jetstream {
                store_dir: \(quoted(path("nats/jetstream")))
                max_memory_store: 256MB
                max_file_store: 20GB
            }

            """
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

    /// Lines appended to postgresql.conf after initdb: loopback, the port, the socket under the
    /// root, SCRAM for passwords.
    public var postgresql: String {
        """
        listen_addresses = '127.0.0.1'
        port = \(postgresPort)
        unix_socket_directories = '\(path("run"))'
        password_encryption = 'scram-sha-256'
        logging_collector = off

        """
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
        [("redis/redis.conf", redis), ("nats/nats.conf", nats), ("prometheus/prometheus.yml", prometheus)]
    }

    /// A double-quoted value for redis.conf and nats.conf (backslashes and quotes escaped).
    func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
