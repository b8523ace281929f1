import Foundation
import Settings
import Transport

/// One long-running server process of the native stack: what to run, where it logs, which ports
/// it takes (with the setting that chose each), and the digest of everything that shapes it, so
/// that `up` restarts it exactly when its configuration changed.
public struct NativeProcess: Sendable, Equatable {
    /// The service name: postgres, redis, nats (nats-1 … in a cluster), nats-exporter, …
    public var name: String
    public var executable: String
    public var arguments: [String]
    /// Variables added to the process's environment (credentials the exporters read).
    public var environment: [String: String]
    /// Run as the `postgres` system user (PostgreSQL refuses to run as root).
    public var runsAsPostgres: Bool
    /// The ports it listens on, each with the setting that chose it.
    public var ports: [(port: Int, setting: String)]
    /// Its log file, under the root.
    public var log: String
    /// Its pid file, under the root.
    public var pidFile: String
    /// A digest of the executable, arguments, environment and generated files it reads.
    public var configurationDigest: String

    public static func == (lhs: NativeProcess, rhs: NativeProcess) -> Bool {
        lhs.name == rhs.name && lhs.executable == rhs.executable && lhs.arguments == rhs.arguments && lhs.environment == rhs.environment
            && lhs.runsAsPostgres == rhs.runsAsPostgres && lhs.ports.map(\.port) == rhs.ports.map(\.port)
            && lhs.ports.map(\.setting) == rhs.ports.map(\.setting) && lhs.log == rhs.log && lhs.pidFile == rhs.pidFile
            && lhs.configurationDigest == rhs.configurationDigest
    }
}

/// The native stack as a pure plan: the generated files and the processes, in start order, from
/// the settings, the root and the programs found. The shell (``NativeStack``) carries it out.
public struct NativePlan: Sendable {
    public let root: String
    public let configs: NativeConfigs
    public let binaries: ServerBinaries
    /// This program, for `infra-up nats-exporter`.
    public let selfExecutable: String
    public let postgresUser: String
    public let postgresPassword: String
    public let postgresDatabase: String
    public let redisPassword: String
    /// NATS nodes (1, or the cluster size).
    public let natsNodes: Int

    public let profile: StackProfile

    public init(
        settings: Settings, root: String, binaries: ServerBinaries, selfExecutable: String, postgresPassword: String, natsNodes: Int? = nil,
        profile: StackProfile = .full
    ) {
        self.root = root
        self.profile = profile
        self.binaries = binaries
        self.selfExecutable = selfExecutable
        let nodes = natsNodes ?? settings.nats.clusterSize
        self.natsNodes = nodes
        configs = NativeConfigs(settings: settings, root: root, natsNodes: nodes, profile: profile)
        postgresUser = settings.postgres.user
        self.postgresPassword = postgresPassword
        postgresDatabase = settings.postgres.database
        redisPassword = settings.redis.password.value
    }

    public func path(_ relative: String) -> String { configs.path(relative) }

    /// PostgreSQL's data folder.
    public var postgresData: String { path("postgres/data") }

    /// The generated files, path under the root and contents.
    public var files: [(path: String, contents: String)] { configs.files }

    /// The processes in start order. Programs not found are left out (the caller stops before
    /// this when something is missing).
    public var processes: [NativeProcess] {
        var list: [NativeProcess] = []
        func add(_ name: String, _ executable: String?, _ arguments: [String], environment: [String: String] = [:], postgres: Bool = false,
                 ports: [(Int, String)], reads files: [String] = []) {
            guard let executable else { return }
            var digest = SHA256Digest()
            digest.add(executable)
            // The program itself: an upgraded package (or a rebuilt infra-up) restarts its server.
            let attributes = try? FileManager.default.attributesOfItem(atPath: executable)
            digest.add("\((attributes?[.size] as? NSNumber)?.int64Value ?? 0) \((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)")
            for argument in arguments { digest.add(argument) }
            for key in environment.keys.sorted() { digest.add(key + "=" + (environment[key] ?? "")) }
            for file in files { digest.add(configs.files.first { $0.path == file }?.contents ?? "") }
            list.append(NativeProcess(
                name: name, executable: executable, arguments: arguments, environment: environment, runsAsPostgres: postgres,
                ports: ports.map { (port: $0.0, setting: $0.1) }, log: path("logs/\(name).log"), pidFile: path("run/\(name).pid"),
                configurationDigest: digest.hex))
        }
        add("postgres", binaries.postgresBin.map { $0 + "/postgres" }, ["-D", postgresData] + configs.postgresArguments, postgres: true,
            ports: [(configs.postgresPort, "POSTGRES.PORT")])
        add("redis", binaries.redisServer, [path("redis/redis.conf")], ports: [(configs.redisPort, "REDIS.PORT")], reads: ["redis/redis.conf"])
        for node in 1...natsNodes {
            let name = natsNodes == 1 ? "nats" : "nats-\(node)"
            var ports = [(configs.natsPort + node - 1, node == 1 ? "NATS_URL" : "NATS_URL (port + \(node - 1))"),
                         (configs.natsMonitorPort + node - 1, node == 1 ? "NATS.MONITOR_PORT" : "NATS.MONITOR_PORT + \(node - 1)")]
            if natsNodes > 1 { ports.append((configs.natsClusterPort + node - 1, "NATS.CLUSTER_PORT + \(node - 1)")) }
            add(name, binaries.natsServer, ["-c", path("nats/\(name).conf")], ports: ports, reads: ["nats/\(name).conf"])
        }
        guard profile == .full else { return list }
        add("nats-exporter", selfExecutable,
            ["nats-exporter", "--port", "\(configs.natsExporterPort)"] + (0..<natsNodes).flatMap { ["--monitor-port", "\(configs.natsMonitorPort + $0)"] },
            ports: [(configs.natsExporterPort, "NATS.EXPORTER_PORT")])
        add("postgres-exporter", binaries.postgresExporter,
            ["--web.listen-address=127.0.0.1:\(configs.postgresExporterPort)"],
            environment: ["DATA_SOURCE_NAME": postgresDataSource],
            ports: [(configs.postgresExporterPort, "POSTGRES.EXPORTER_PORT")])
        add("redis-exporter", binaries.redisExporter,
            ["-redis.addr=redis://127.0.0.1:\(configs.redisPort)", "-web.listen-address=127.0.0.1:\(configs.redisExporterPort)"],
            environment: redisPassword.isEmpty ? [:] : ["REDIS_PASSWORD": redisPassword],
            ports: [(configs.redisExporterPort, "REDIS.EXPORTER_PORT")])
        add("prometheus", binaries.prometheus,
            ["--config.file=\(path("prometheus/prometheus.yml"))", "--storage.tsdb.path=\(path("prometheus/data"))",
             "--web.listen-address=127.0.0.1:\(configs.prometheusPort)", "--storage.tsdb.retention.time=7d"],
            ports: [(configs.prometheusPort, "PROMETHEUS_PORT")], reads: ["prometheus/prometheus.yml"])
        return list
    }

    /// The postgres exporter's connection: the configured user over TCP to the `postgres`
    /// database (its statistics cover the whole server, and it exists before `up` creates the
    /// configured one), password percent-encoded.
    var postgresDataSource: String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let user = postgresUser.addingPercentEncoding(withAllowedCharacters: allowed) ?? postgresUser
        let password = postgresPassword.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        return "postgresql://\(user):\(password)@127.0.0.1:\(configs.postgresPort)/postgres?sslmode=disable"
    }
}

/// A SHA-256 over length-prefixed strings, for configuration digests.
struct SHA256Digest {
    private var bytes: [UInt8] = []

    mutating func add(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes.append(contentsOf: withUnsafeBytes(of: UInt64(utf8.count).bigEndian, Array.init))
        bytes.append(contentsOf: utf8)
    }

    var hex: String { Crypto.hex(Crypto.sha256(bytes)) }
}
