import Foundation
import Infra
import JetStream
import NATSProto
import PGWire
import RESP
import TestSupport
import Testing
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// `infra-up` as a user runs it, in native mode, on ports of its own under a temporary project
/// folder: up from nothing, status, Prometheus's targets and the dashboard's metric names, a
/// second up that changes nothing, a killed server brought back, a taken port, down and
/// down --volumes; and a three-node NATS cluster with R3 streams.
@Suite("infra-up end to end (native mode)", .serialized, .timeLimit(.minutes(6)))
struct InfraUpEndToEndTests {
    /// The infra-up program beside the test bundle (built with the tests), or INFRA_TEST_INFRA_UP.
    static var executable: String {
        if let path = LiveServer.value("INFRA_TEST_INFRA_UP") { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments.first { $0.hasSuffix(".xctest") } ?? CommandLine.arguments[0])
        return bundle.deletingLastPathComponent().appendingPathComponent("infra-up").path
    }

    /// The repository's root (settings.toml, migrations/, config/).
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `count` consecutive free loopback ports, below the kernel's ephemeral range so that no
    /// outgoing connection takes one between this check and the servers' bind.
    static func freePorts(_ count: Int) -> [Int] {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) } ?? []
        let ceiling = max(12_000, (range.first ?? 32_768) - count - 1)
        while true {
            let base = Int.random(in: 10_000...ceiling)
            let ports = Array(base..<(base + count))
            if ports.allSatisfy({ !PortOwner.listener(on: $0).listening }) { return ports }
        }
    }

    /// A project folder with the repository's settings and migrations, and the variables that
    /// give it ports of its own and credentials for Redis and NATS.
    struct Project {
        let root: URL
        let environment: [String: String]
        let ports: [String: Int]
        let redisPassword: String
        let natsUser = "infra"
        let natsPassword: String

        init(natsNodes: Int = 1) throws {
            root = try LiveServer.scratchDirectory("infra-up")
            // The postgres user (when running as root) reaches the data folder through here.
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root.path)
            for item in ["settings.toml", "migrations"] {
                try FileManager.default.copyItem(at: repository.appendingPathComponent(item), to: root.appendingPathComponent(item))
            }
            let free = freePorts(7 + 3 * natsNodes)
            var ports = [
                "postgres": free[0], "redis": free[1], "prometheus": free[2], "nats-exporter": free[3], "postgres-exporter": free[4],
                "redis-exporter": free[5], "grafana": free[6],
            ]
            ports["nats"] = free[7]
            ports["nats-monitor"] = free[7 + natsNodes]
            ports["nats-cluster"] = free[7 + 2 * natsNodes]
            self.ports = ports
            redisPassword = Crypto.hex(Crypto.randomBytes(count: 12))
            natsPassword = Crypto.hex(Crypto.randomBytes(count: 12))
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRANSCRIPTION_") && $0.key != "ENV_FOR_DYNACONF" }
            environment["TRANSCRIPTION_POSTGRES__PORT"] = "\(free[0])"
            environment["TRANSCRIPTION_REDIS__PORT"] = "\(free[1])"
            environment["TRANSCRIPTION_PROMETHEUS_PORT"] = "\(free[2])"
            environment["TRANSCRIPTION_NATS__EXPORTER_PORT"] = "\(free[3])"
            environment["TRANSCRIPTION_POSTGRES__EXPORTER_PORT"] = "\(free[4])"
            environment["TRANSCRIPTION_REDIS__EXPORTER_PORT"] = "\(free[5])"
            environment["TRANSCRIPTION_GRAFANA__PORT"] = "\(free[6])"
            environment["TRANSCRIPTION_NATS_URL"] = "nats://127.0.0.1:\(free[7])"
            environment["TRANSCRIPTION_NATS__MONITOR_PORT"] = "\(free[7 + natsNodes])"
            environment["TRANSCRIPTION_NATS__CLUSTER_PORT"] = "\(ports["nats-cluster"] ?? 0)"
            environment["TRANSCRIPTION_REDIS__PASSWORD"] = redisPassword
            environment["TRANSCRIPTION_NATS__USER"] = natsUser
            environment["TRANSCRIPTION_NATS__PASSWORD"] = natsPassword
            self.environment = environment
        }

        var infra: URL { root.appendingPathComponent(".infra") }

        /// Runs infra-up with the project's folder and variables; standard output and error together.
        func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
            let result = try await runMerged(InfraUpEndToEndTests.executable, arguments + ["--root", root.path], environment: environment)
            return result
        }

        func postgresPassword() throws -> String {
            try String(contentsOf: infra.appendingPathComponent("secrets/postgres-password"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Every process recorded under .infra/run.
        func records() -> [PidRecord] {
            let run = infra.appendingPathComponent("run")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []
            return files.filter { $0.hasSuffix(".pid") }.compactMap { PidRecord(file: run.appendingPathComponent($0).path) }
        }
    }

    /// Runs a program with standard output and error in one pipe.
    static func runMerged(_ executable: String, _ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "infra-up.e2e").async {
                continuation.resume(with: Result {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: executable)
                    process.arguments = arguments
                    process.environment = environment
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    process.standardError = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
                })
            }
        }
    }

    static func decodeReport(_ output: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(output.utf8))
    }

    @Test func upStatusIdempotenceRecoveryPortConflictAndDown() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            Issue.record("infra-up is not built at \(Self.executable): build it with the tests (`swift build --build-tests`)")
            return
        }
        let project = try Project()
        defer {
            // Whatever happens, nothing is left running.
            for record in project.records() where ProcessSupervisor.isAlive(record) { kill(record.pid, SIGKILL) }
            try? FileManager.default.removeItem(at: project.root)
        }

        // 1. Up from nothing.
        let clock = ContinuousClock()
        let firstStart = clock.now
        let first = try await project.run(["up", "--timeout", "120"])
        let firstElapsed = clock.now - firstStart
        #expect(first.status == 0, "infra-up up failed:\n\(first.output)")
        guard first.status == 0 else { return }
        #expect(first.output.contains("applied migration"))
        #expect(first.output.contains("created stream EVENTS"))
        let postgresPassword = try project.postgresPassword()
        #expect(!first.output.contains(project.redisPassword) && !first.output.contains(project.natsPassword), "a password was printed")
        #expect(!first.output.contains(postgresPassword), "the PostgreSQL password was printed")

        // 2. status --json: every service healthy, migrations at head, streams and buckets present.
        let status = try await project.run(["status", "--json"])
        #expect(status.status == 0, "status failed:\n\(status.output)")
        let report = try Self.decodeReport(status.output)
        #expect(report["healthy"] == .bool(true))
        let services = report["services"]?.array ?? []
        let names = services.compactMap { $0["name"]?.string }
        #expect(Set(names).isSuperset(of: ["postgres", "redis", "nats", "nats-exporter", "postgres-exporter", "redis-exporter", "prometheus", "grafana"]))
        for service in services where service["name"]?.string != "grafana" {
            #expect(service["state"]?.string == "healthy", "\(service["name"]?.string ?? "?") is \(service["state"]?.string ?? "?"): \(service["detail"]?.string ?? "")")
        }
        #expect(report["migrations"]?["current"] == report["migrations"]?["head"])
        let topology = report["topology"]?.array ?? []
        #expect(topology.count == 5 && topology.allSatisfy { $0["state"]?.string == "present" }, "topology: \(topology)")
        #expect(!status.output.contains(project.redisPassword) && !status.output.contains(postgresPassword))

        // 3. Read back with the project's own clients.
        let postgresPort = try #require(project.ports["postgres"])
        let connection = try await PostgresConnection.connect(PostgresConfiguration(
            hosts: [.init("127.0.0.1", port: postgresPort)], user: "transcription", password: postgresPassword,
            database: "transcription", sslMode: .disable))
        let applied = try await connection.simpleQuery("SELECT count(*)::int4 FROM schema_migrations WHERE finished")
        let files = try FileManager.default.contentsOfDirectory(atPath: project.root.appendingPathComponent("migrations").path).filter { $0.hasSuffix(".sql") }
        #expect(try applied.first?.rows.first?.decode(Int32.self, column: 0) == Int32(files.count))
        let method = try await connection.simpleQuery("SHOW password_encryption")
        #expect(try method.first?.rows.first?.decode(String.self, column: 0) == "scram-sha-256")
        connection.close()
        var natsConfiguration = NATSConfiguration(servers: ["nats://127.0.0.1:\(try #require(project.ports["nats"]))"])
        natsConfiguration.user = project.natsUser
        natsConfiguration.password = project.natsPassword
        let client = try await NATSClient.connect(natsConfiguration)
        let streams = Set(try await JetStreamContext(client: client).streamNames())
        #expect(streams.isSuperset(of: ["EVENTS", "TASKS", "KV_STORAGE", "OBJ_AUDIO", "OBJ_EXPORTS"]))
        await client.close()
        let redis = try await RedisConnection.connect(RedisConfiguration(port: try #require(project.ports["redis"]), password: project.redisPassword))
        let appendOnly: String? =
            switch try await redis.send(["CONFIG", "GET", "appendonly"]) {
            case .map(let pairs): pairs.first?.value.string
            case .array(let values): values.last?.string
            default: nil
            }
        #expect(appendOnly == "yes")
        redis.close()
        await #expect(throws: (any Error).self, "Redis accepted a client without the password") {
            let anonymous = try await RedisConnection.connect(RedisConfiguration(port: try #require(project.ports["redis"])))
            _ = try await anonymous.send(["GET", "x"])
        }

        // 4. Prometheus scrapes every target, and every metric the dashboard queries is served.
        try await Self.expectTargetsUpAndDashboardMetrics(prometheusPort: try #require(project.ports["prometheus"]))

        // 5. A second up changes nothing, and is quick.
        let secondStart = clock.now
        let second = try await project.run(["up"])
        let secondElapsed = clock.now - secondStart
        #expect(second.status == 0, "second up failed:\n\(second.output)")
        #expect(second.output.contains("nothing changed"), "second up:\n\(second.output)")
        #expect(secondElapsed < .seconds(3), "second up took \(secondElapsed) (first \(firstElapsed))")

        // 6. A killed redis-server: status says so, the next up starts it again (and only it).
        let redisRecord = try #require(PidRecord(file: project.infra.appendingPathComponent("run/redis.pid").path))
        kill(redisRecord.pid, SIGKILL)
        while ProcessSupervisor.isAlive(redisRecord) { try await Task.sleep(for: .milliseconds(20)) }
        let broken = try await project.run(["status"])
        #expect(broken.status == 1 && broken.output.contains("stopped"), "status after the kill:\n\(broken.output)")
        let recovered = try await project.run(["up"])
        #expect(recovered.status == 0 && recovered.output.contains("started 1,"), "up after the kill:\n\(recovered.output)")

        // 7. A port taken by something else: a clear error naming port, setting and holder, and nothing started.
        let other = try Project()
        defer { try? FileManager.default.removeItem(at: other.root) }
        let taken = try Listener.bind(host: "127.0.0.1", port: try #require(other.ports["redis"]))
        let conflict = try await other.run(["up"])
        taken.close()
        #expect(conflict.status == 1, "up with a taken port:\n\(conflict.output)")
        #expect(conflict.output.contains("port \(other.ports["redis"] ?? 0) (REDIS.PORT) is already in use by process \(getpid())"), "\(conflict.output)")
        #expect(conflict.output.contains("nothing was started") && other.records().isEmpty)

        // 8. down: no process and no listening port left; down --volumes: no data.
        let records = project.records()
        #expect(records.count == 7)
        let down = try await project.run(["down"])
        #expect(down.status == 0, "down:\n\(down.output)")
        // A stopped server may stay a zombie until init reaps it: gone means not running.
        for record in records { #expect(!ProcessSupervisor.isAlive(record), "process \(record.pid) still runs after down") }
        for (name, port) in project.ports where name != "grafana" && name != "nats-cluster" {
            #expect(!PortOwner.listener(on: port).listening, "\(name)'s port \(port) still listens after down")
        }
        #expect(FileManager.default.fileExists(atPath: project.infra.appendingPathComponent("postgres/data/PG_VERSION").path))
        // 9. A password the data was not initialised with: the cause and the fix, exit status 1; then
        //    down --volumes stops what that up started and deletes the data.
        var wrong = project.environment
        wrong["TRANSCRIPTION_POSTGRES__PASSWORD"] = "not-the-password"
        let refused = try await Self.runMerged(Self.executable, ["up", "--root", project.root.path], environment: wrong)
        #expect(refused.status == 1 && refused.output.contains("initialised with another password"), "up with a wrong password:\n\(refused.output)")
        #expect(!refused.output.contains("not-the-password"))

        let left = project.records()
        let wipe = try await project.run(["down", "--volumes"])
        for record in left { #expect(!ProcessSupervisor.isAlive(record), "process \(record.pid) still runs after down --volumes") }
        #expect(wipe.status == 0 && !FileManager.default.fileExists(atPath: project.infra.path), "down --volumes:\n\(wipe.output)")
    }

    @Test func aThreeNodeClusterWithReplicatedStreams() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            Issue.record("infra-up is not built at \(Self.executable)")
            return
        }
        let project = try Project(natsNodes: 3)
        defer {
            for record in project.records() where ProcessSupervisor.isAlive(record) { kill(record.pid, SIGKILL) }
            try? FileManager.default.removeItem(at: project.root)
        }
        let up = try await project.run(["up", "--nats-cluster", "3", "--timeout", "120"])
        #expect(up.status == 0, "up --nats-cluster 3:\n\(up.output)")
        guard up.status == 0 else { return }
        let status = try await project.run(["status", "--json"])
        let report = try Self.decodeReport(status.output)
        let nodes = (report["services"]?.array ?? []).filter { ($0["name"]?.string ?? "").hasPrefix("nats-") && $0["name"]?.string != "nats-exporter" }
        #expect(nodes.count == 3 && nodes.allSatisfy { $0["state"]?.string == "healthy" }, "\(status.output)")
        #expect(report["healthy"] == .bool(true), "\(status.output)")

        // Every stream and bucket is replicated three times, read back through the second node.
        let natsPort = try #require(project.ports["nats"])
        var configuration = NATSConfiguration(servers: ["nats://127.0.0.1:\(natsPort + 1)"])
        configuration.user = project.natsUser
        configuration.password = project.natsPassword
        let client = try await NATSClient.connect(configuration)
        let js = JetStreamContext(client: client)
        for name in ["EVENTS", "TASKS", "KV_STORAGE", "OBJ_AUDIO", "OBJ_EXPORTS"] {
            let info = try await js.streamInfo(name)
            #expect(info.config.replicas == 3, "\(name) has \(info.config.replicas) replicas")
        }
        await client.close()
        let down = try await project.run(["down", "--volumes"])
        #expect(down.status == 0, "\(down.output)")
        for port in natsPort..<(natsPort + 3) { #expect(!PortOwner.listener(on: port).listening) }
    }

    /// Polls Prometheus until every target is up (its first scrape comes within one 15 s
    /// interval), then checks that each metric name the Grafana dashboard queries is one
    /// Prometheus has received from the exporters.
    static func expectTargetsUpAndDashboardMetrics(prometheusPort: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var health: [String: String] = [:]
        while clock.now < deadline {
            let response = try await HTTP.get(port: prometheusPort, path: "/api/v1/targets")
            let targets = try decodeReport(response.text)["data"]?["activeTargets"]?.array ?? []
            health = Dictionary(targets.map { ($0["labels"]?["job"]?.string ?? "?", $0["health"]?.string ?? "?") }, uniquingKeysWith: { $1 })
            if health.count == 4, health.values.allSatisfy({ $0 == "up" }) { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(health == ["prometheus": "up", "postgres": "up", "redis": "up", "nats": "up"], "targets: \(health)")

        let names = try decodeReport(try await HTTP.get(port: prometheusPort, path: "/api/v1/label/__name__/values").text)["data"]?.array?
            .compactMap(\.string) ?? []
        let known = Set(names)
        let dashboards = repository.appendingPathComponent("config/grafana/dashboards")
        var queried: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: dashboards.path) where file.hasSuffix(".json") {
            let dashboard = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: dashboards.appendingPathComponent(file)))
            for panel in dashboard["panels"]?.array ?? [] {
                for target in panel["targets"]?.array ?? [] {
                    if let expression = target["expr"]?.string { queried.formUnion(metricNames(in: expression)) }
                }
            }
        }
        #expect(!queried.isEmpty)
        for name in queried.sorted() {
            #expect(known.contains(name), "the dashboard queries \(name), which no exporter serves")
        }
    }

    /// The metric names of a PromQL expression: identifiers that are not functions, keywords,
    /// label names or durations.
    static func metricNames(in expression: String) -> Set<String> {
        let reserved: Set<String> = ["sum", "rate", "irate", "increase", "avg", "max", "min", "count", "by", "without", "on", "ignoring", "and", "or",
                                     "unless", "topk", "bottomk", "histogram_quantile", "delta", "deriv", "abs", "clamp_min", "clamp_max", "offset"]
        var names: Set<String> = []
        var index = expression.startIndex
        var insideBraces = false
        var insideParenthesesAfterBy = false
        var previousWord = ""
        while index < expression.endIndex {
            let character = expression[index]
            if character == "{" { insideBraces = true }
            if character == "}" { insideBraces = false }
            if character == "[" {
                // A range like [5m]: skip to its end.
                index = expression[index...].firstIndex(of: "]") ?? expression.endIndex
                continue
            }
            if character == "\"" {
                index = expression[expression.index(after: index)...].firstIndex(of: "\"").map { expression.index(after: $0) } ?? expression.endIndex
                continue
            }
            if character.isLetter || character == "_" {
                let start = index
                while index < expression.endIndex, expression[index].isLetter || expression[index].isNumber || expression[index] == "_" || expression[index] == ":" {
                    index = expression.index(after: index)
                }
                let word = String(expression[start..<index])
                if previousWord == "by" || previousWord == "without" { insideParenthesesAfterBy = true }
                if !insideBraces, !insideParenthesesAfterBy, !reserved.contains(word) { names.insert(word) }
                previousWord = word
                continue
            }
            if character == ")" { insideParenthesesAfterBy = false }
            if !character.isWhitespace && character != "(" { previousWord = "" }
            index = expression.index(after: index)
        }
        return names
    }
}
