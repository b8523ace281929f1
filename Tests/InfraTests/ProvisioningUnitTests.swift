import Foundation
import Logging
import Settings
import Synchronization
import TestSupport
import Testing
import Transport

@testable import Infra

/// The pure parts of the provisioning: the HTTP reader (bad bytes end in an error, never a
/// crash), pid records, the NATS exporter's exposition text, the plan's digests and the report.
@Suite("Provisioning: pure parts")
struct ProvisioningUnitTests {
    @Test func httpResponsesAreReadAndBadOnesRefused() throws {
        let plain = try HTTP.parseResponse(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello, and more".utf8))
        #expect(plain.status == 200 && plain.text == "hello" && plain.headers["x-a"] == "b")
        let chunked = try HTTP.parseResponse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n".utf8))
        #expect(chunked.text == "hello world")
        let untilClose = try HTTP.parseResponse(Array("HTTP/1.0 503 Service Unavailable\r\n\r\n{}".utf8))
        #expect(untilClose.status == 503 && untilClose.text == "{}")

        for bad in [
            "", "HTTP/1.1 200 OK\r\n", "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nab", "HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
        ] {
            #expect(throws: HTTP.Message.self, "accepted \(bad.debugDescription)") { try HTTP.parseResponse(Array(bad.utf8)) }
        }
        // Random bytes after a valid status line never crash the reader.
        var random = SplitMix64(seed: 15)
        for _ in 0..<2000 {
            var bytes = Array("HTTP/1.1 200 OK\r\n".utf8)
            for _ in 0..<Int(random.next() % 64) { bytes.append(UInt8(truncatingIfNeeded: random.next())) }
            if random.next() % 2 == 0 { bytes += Array("\r\n\r\n".utf8) }
            _ = try? HTTP.parseResponse(bytes)
        }
    }

    @Test func pidRecordsRoundTripAndForeignFilesAreNotOurs() {
        let record = PidRecord(pid: 4242, startTicks: 987_654, configurationDigest: "abc123", executable: "/usr/bin/redis-server")
        #expect(PidRecord(text: record.text) == record)
        for foreign in ["", "4242\n", "1 5 d\n/x\n", "x 5 d\n/x\n", "4242 5 d\n\n", "4242 -5 d\n/x\n", "4242 5\n/x\n"] {
            #expect(PidRecord(text: foreign) == nil, "read \(foreign.debugDescription) as a record")
        }
        // This process, with its real start time, is alive; with another start time (a reused pid) it is not.
        let ticks = ProcessSupervisor.startTicks(of: getpid()) ?? 0
        #expect(ProcessSupervisor.isAlive(PidRecord(pid: getpid(), startTicks: ticks, configurationDigest: "", executable: "/nonexistent/other")))
        #expect(!ProcessSupervisor.isAlive(PidRecord(pid: getpid(), startTicks: ticks + 1, configurationDigest: "", executable: "/x")))
    }

    @Test func theExporterUsesPrometheusNATSExporterNamesAndLabels() throws {
        let varz = try JSONDecoder().decode(JSONValue.self, from: Data("""
            {"server_id": "NABC", "server_name": "n1", "connections": 3, "in_msgs": 10, "mem": 1048576, "cpu": 1.5,
             "jetstream": {"config": {}}, "auth_required": true, "version": "2.15.1"}
            """.utf8)).object ?? [:]
        let jsz = try JSONDecoder().decode(JSONValue.self, from: Data("""
            {"config": {"max_memory": 100, "max_storage": 200}, "streams": 1, "consumers": 1, "messages": 5, "bytes": 50,
             "meta_cluster": {"name": "c", "leader": "n1"},
             "account_details": [{"name": "$G", "id": "$G", "stream_detail": [{"name": "EVENTS", "cluster": {"leader": "n2"},
               "state": {"messages": 5, "bytes": 50, "first_seq": 1, "last_seq": 5, "consumer_count": 1},
               "consumer_detail": [{"name": "w\\"q", "created": "2026-01-01T00:00:00Z", "delivered": {"consumer_seq": 4, "stream_seq": 4},
                 "ack_floor": {"consumer_seq": 3, "stream_seq": 3}, "num_ack_pending": 1, "num_redelivered": 0, "num_waiting": 2, "num_pending": 1}]}]}]}
            """.utf8)).object ?? [:]
        var metrics = NATSMetrics()
        metrics.addVarz(varz, serverID: "NABC")
        metrics.addHealthz(["status": .string("ok")], serverID: "NABC")
        metrics.addJsz(jsz, varz: varz, serverID: "NABC")
        let text = metrics.text
        #expect(text.contains("# TYPE gnatsd_varz_in_msgs counter\ngnatsd_varz_in_msgs{server_id=\"NABC\"} 10\n"))
        #expect(text.contains("gnatsd_varz_connections{server_id=\"NABC\"} 3\n") && text.contains("gnatsd_varz_cpu{server_id=\"NABC\"} 1.5\n"))
        // Booleans, strings and objects are not numbers: left out.
        #expect(!text.contains("gnatsd_varz_auth_required") && !text.contains("gnatsd_varz_version") && !text.contains("gnatsd_varz_jetstream"))
        #expect(text.contains("gnatsd_healthz_status{server_id=\"NABC\"} 0\n"))
        #expect(text.contains(
            "jetstream_stream_total_messages{server_id=\"NABC\",server_name=\"n1\",cluster=\"c\",domain=\"\",meta_leader=\"n1\",is_meta_leader=\"true\",account=\"$G\",account_id=\"$G\",stream_name=\"EVENTS\",stream_leader=\"n2\",is_stream_leader=\"false\"} 5\n"))
        #expect(text.contains("consumer_name=\"w\\\"q\""), "label values are escaped")
        #expect(text.contains("jetstream_consumer_num_pending{") && text.contains("jetstream_server_max_storage{"))
        // One HELP and TYPE per family.
        #expect(text.components(separatedBy: "# TYPE jetstream_consumer_num_pending ").count == 2)
    }

    @Test func versionsAreReadFromBuildInfoMetrics() {
        let text = """
            # HELP redis_exporter_build_info redis exporter build_info
            redis_exporter_build_info{build_date="2023",commit_sha="x",golang_version="go1.19.8",version="1.45.0"} 1
            """
        #expect(Readiness.version(fromMetrics: text) == "1.45.0")
        #expect(Readiness.version(fromMetrics: "postgres_exporter_build_info{branch=\"\",goversion=\"go1.19\",version=\"0.11.1\"} 1") == "0.11.1")
        #expect(Readiness.version(fromMetrics: "up 1") == nil)
    }

    @Test func aChangedConfigurationChangesOnlyThatProcessDigest() {
        var settings = Settings()
        let binaries = ServerBinaries(
            postgresBin: "/usr/lib/postgresql/15/bin", redisServer: "/usr/bin/redis-server", natsServer: "/usr/bin/nats-server",
            prometheus: "/usr/bin/prometheus", postgresExporter: "/usr/bin/prometheus-postgres-exporter", redisExporter: "/usr/bin/prometheus-redis-exporter")
        let before = NativePlan(settings: settings, root: "/tmp/r", binaries: binaries, selfExecutable: "/usr/bin/infra-up", postgresPassword: "p").processes
        settings.redis.password = Secret("new")
        let after = NativePlan(settings: settings, root: "/tmp/r", binaries: binaries, selfExecutable: "/usr/bin/infra-up", postgresPassword: "p").processes
        let changed = zip(before, after).filter { $0.configurationDigest != $1.configurationDigest }.map(\.0.name)
        // redis.conf has the password; the redis exporter reads it.
        #expect(changed == ["redis", "redis-exporter"])
        #expect(before.map(\.name) == ["postgres", "redis", "nats", "nats-exporter", "postgres-exporter", "redis-exporter", "prometheus"])

        settings.nats.clusterSize = 3
        let cluster = NativePlan(settings: settings, root: "/tmp/r", binaries: binaries, selfExecutable: "/usr/bin/infra-up", postgresPassword: "p")
        #expect(cluster.processes.filter { $0.name.hasPrefix("nats-") && $0.name != "nats-exporter" }.map(\.name) == ["nats-1", "nats-2", "nats-3"])
        #expect(cluster.configs.natsNode(2).contains("listen: 127.0.0.1:4223") && cluster.configs.natsNode(2).contains("nats-route://127.0.0.1:6224"))
        #expect(cluster.processes.first { $0.name == "nats-exporter" }?.arguments.filter { $0 == "--monitor-port" }.count == 3)
    }

    @Test func theReportIsHealthyOnlyWhenEverythingIs() throws {
        var report = StackReport(
            mode: "native", root: "/r",
            services: [
                .init(name: "postgres", address: "127.0.0.1:5432", version: "15", state: "healthy"),
                .init(name: "grafana", address: "127.0.0.1:3000", state: "docker mode only"),
            ],
            migrations: .init(current: "b", head: "b", pending: []),
            topology: [.init(kind: "stream", name: "EVENTS", stream: "EVENTS", state: "present", differences: [])])
        #expect(report.healthy)
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(report.json.utf8))
        #expect(json["healthy"] == .bool(true) && json["services"]?.array?.count == 2)
        report.topology[0].state = "conflict"
        #expect(!report.healthy)
        report.topology[0].state = "present"
        report.migrations?.pending = ["c"]
        #expect(!report.healthy && report.table.contains { $0.contains("1 to apply") })
        report.migrations?.pending = []
        report.services[0].state = "stopped"
        #expect(!report.healthy)
    }

    @Test func plainProgressPrintsOneLinePerService() {
        let lines = Mutex<[String]>([])
        let progress = Progress(isTerminal: false) { text in lines.withLock { $0.append(text) } }
        progress.begin("postgres")
        progress.begin("redis")
        progress.finish("redis", "ready, 7.0", ok: true)
        progress.finish("postgres", "failed: no", ok: false)
        progress.tick()
        let output = lines.withLock { $0 }
        #expect(output.count == 2 && output[0].hasPrefix("✓ redis") && output[1].hasPrefix("✗ postgres") && !output.joined().contains("\u{1B}"))
    }

    @Test func composeReadsOnlyVariablesDockerModePasses() throws {
        var settings = Settings()
        settings.postgres.password = Secret("p")
        settings.redis.password = Secret("r")
        settings.nats.user = "u"
        settings.nats.password = Secret("n")
        settings.grafana.adminPassword = Secret("g")
        settings.postgres.port = 15432
        let variables = DockerStack(projectRoot: "/r", settings: settings, logger: Logger(label: "test"), print: { _ in }).variables
        let compose = try String(contentsOf: InfraUpEndToEndTests.repository.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        var used: Set<String> = []
        var rest = Substring(compose)
        while let start = rest.range(of: "${") {
            let name = rest[start.upperBound...].prefix { $0.isUppercase || $0 == "_" || $0.isNumber }
            if !name.isEmpty { used.insert(String(name)) }
            rest = rest[start.upperBound...]
        }
        #expect(!used.isEmpty)
        #expect(used.subtracting(variables.keys).isEmpty, "docker-compose.yml reads \(used.subtracting(variables.keys).sorted()), which Docker mode never sets")
        #expect(variables["POSTGRES_PORT"] == "15432" && variables["POSTGRES_PASSWORD"] == "p" && variables["NATS_USER"] == "u")
    }
}
