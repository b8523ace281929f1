import Foundation

/// What `up` and `status` report: every service with its address, version, state and data
/// folder, the migrations and the NATS topology; printed as a table or as JSON.
public struct StackReport: Sendable, Codable, Equatable {
    public struct Service: Sendable, Codable, Equatable {
        public var name: String
        public var address: String
        public var version: String
        /// healthy, unhealthy, stopped, missing, or "docker mode only".
        public var state: String
        public var data: String
        /// The URL to use, password masked.
        public var url: String
        /// What went wrong, when something did.
        public var detail: String
        public var pid: Int32?

        public init(
            name: String, address: String, version: String = "", state: String, data: String = "", url: String = "", detail: String = "",
            pid: Int32? = nil
        ) {
            self.name = name
            self.address = address
            self.version = version
            self.state = state
            self.data = data
            self.url = url
            self.detail = detail
            self.pid = pid
        }

        public var isHealthy: Bool { state == "healthy" || state == "docker mode only" }
    }

    public struct Migrations: Sendable, Codable, Equatable {
        /// The applied revision (nil: none).
        public var current: String?
        public var head: String?
        public var pending: [String]
        public var atHead: Bool { pending.isEmpty && current == head }
    }

    public struct TopologyEntry: Sendable, Codable, Equatable {
        public var kind: String
        public var name: String
        public var stream: String
        /// present, missing, created, updated, unchanged, conflict.
        public var state: String
        public var differences: [String]
    }

    public var mode: String
    public var root: String
    public var services: [Service]
    public var migrations: Migrations?
    public var topology: [TopologyEntry]
    /// Problems outside one service (a migration error, the topology unreachable).
    public var problems: [String]
    /// Whether the migrations and the topology belong to this stack (not to the test profile's).
    public var checksMigrations = true

    public init(mode: String, root: String, services: [Service], migrations: Migrations? = nil, topology: [TopologyEntry] = [], problems: [String] = []) {
        self.mode = mode
        self.root = root
        self.services = services
        self.migrations = migrations
        self.topology = topology
        self.problems = problems
    }

    public var healthy: Bool {
        services.allSatisfy(\.isHealthy) && problems.isEmpty && (!checksMigrations || (migrations?.atHead ?? false))
            && topology.allSatisfy { $0.state != "missing" && $0.state != "conflict" }
    }

    /// The table: one row per service, then the migrations and the topology in a line each.
    public var table: [String] {
        let header = ["SERVICE", "ADDRESS", "VERSION", "STATE", "DATA", "URL"]
        let rows = services.map { [$0.name, $0.address, $0.version, $0.state, $0.data, $0.url] }
        let widths = (0..<header.count).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        var lines = [line(header)] + rows.map(line)
        for service in services where !service.detail.isEmpty { lines.append("  \(service.name): \(service.detail)") }
        if let migrations {
            let current = migrations.current ?? "base"
            lines.append(
                migrations.atHead
                    ? "migrations: at head (\(current))"
                    : "migrations: at \(current), \(migrations.pending.count) to apply (\(migrations.pending.joined(separator: ", ")))")
        }
        if !topology.isEmpty {
            let parts = topology.map { "\($0.kind) \($0.name) \($0.state)" }
            lines.append("nats topology: " + parts.joined(separator: ", "))
            for entry in topology { for difference in entry.differences { lines.append("    \(entry.name): \(difference)") } }
        }
        for problem in problems { lines.append("problem: \(problem)") }
        return lines
    }

    /// The report as pretty-printed JSON with a `healthy` field.
    public var json: String {
        struct Envelope: Encodable {
            var healthy: Bool
            var report: StackReport
            func encode(to encoder: Encoder) throws {
                try report.encode(to: encoder)
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(healthy, forKey: .healthy)
            }
            enum Key: String, CodingKey { case healthy }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(Envelope(healthy: healthy, report: self)) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
