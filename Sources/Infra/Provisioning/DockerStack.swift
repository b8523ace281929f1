import Foundation
import Logging
import Settings

/// Docker mode: docker-compose.yml with the settings' credentials and ports passed as variables
/// (the settings stay the one source of both modes), `up --wait` on the healthchecks, the
/// `migrate` service, then the NATS topology and the same report as native mode, probed through
/// the ports published on 127.0.0.1.
public struct DockerStack: Sendable {
    public let projectRoot: String
    public let settings: Settings
    public let logger: Logger
    public let print: @Sendable (String) -> Void

    public init(projectRoot: String, settings: Settings, logger: Logger, print: @escaping @Sendable (String) -> Void) {
        self.projectRoot = projectRoot
        self.settings = settings
        self.logger = logger
        self.print = print
    }

    /// Whether `docker info` answers and a Compose (the plugin or docker-compose) is installed.
    public static func isAvailable() async -> Bool {
        guard let docker = NativeStack.which("docker"),
            let info = try? await ProcessSupervisor.run(docker, ["info", "--format", "{{.ServerVersion}}"]), info.status == 0
        else { return false }
        return await compose() != nil
    }

    /// The Compose command: `docker compose` when the plugin answers, else `docker-compose`.
    static func compose() async -> [String]? {
        if let docker = NativeStack.which("docker"), let version = try? await ProcessSupervisor.run(docker, ["compose", "version"]), version.status == 0 {
            return [docker, "compose"]
        }
        if let standalone = NativeStack.which("docker-compose") { return [standalone] }
        return nil
    }

    /// The variables docker-compose.yml reads, from the settings.
    var variables: [String: String] {
        var variables = [
            "POSTGRES_USER": settings.postgres.user, "POSTGRES_DB": settings.postgres.database, "POSTGRES_PORT": "\(settings.postgres.port)",
            "REDIS_PORT": "\(settings.redis.port)", "NATS_MONITOR_PORT": "\(settings.nats.monitorPort)",
            "NATS_PORT": "\(NativeConfigs(settings: settings, root: "").natsPort)", "PROMETHEUS_PORT": "\(settings.prometheusPort)",
            "POSTGRES_EXPORTER_PORT": "\(settings.postgres.exporterPort)", "REDIS_EXPORTER_PORT": "\(settings.redis.exporterPort)",
            "NATS_EXPORTER_PORT": "\(settings.nats.exporterPort)", "GRAFANA_PORT": "\(settings.grafana.port)",
        ]
        if !settings.postgres.password.isEmpty { variables["POSTGRES_PASSWORD"] = settings.postgres.password.value }
        if !settings.redis.password.isEmpty { variables["REDIS_PASSWORD"] = settings.redis.password.value }
        if !settings.nats.user.isEmpty {
            variables["NATS_USER"] = settings.nats.user
            variables["NATS_PASSWORD"] = settings.nats.password.value
        }
        if !settings.grafana.adminPassword.isEmpty { variables["GRAFANA_ADMIN_PASSWORD"] = settings.grafana.adminPassword.value }
        return variables
    }

    func runCompose(_ arguments: [String]) async -> (status: Int32, output: String) {
        guard let compose = await Self.compose() else { return (ExitStatus.missingPrerequisites, "Docker Compose is not installed") }
        let file = (projectRoot as NSString).appendingPathComponent("docker-compose.yml")
        let full = Array(compose.dropFirst()) + ["--project-directory", projectRoot, "-f", file] + arguments
        do {
            return try await ProcessSupervisor.run(compose[0], full, environment: variables, workingDirectory: projectRoot)
        } catch {
            return (ExitStatus.serviceFailed, "\(error)")
        }
    }

    public func up(timeout: Duration, progress: Progress) async -> Int32 {
        progress.line("docker compose up (waiting for the healthchecks)")
        let seconds = max(1, Int(timeout.components.seconds))
        let result = await runCompose(["up", "--detach", "--wait", "--wait-timeout", "\(seconds)"])
        guard result.status == 0 else {
            print("infra-up: docker compose up failed (status \(result.status)):")
            for line in result.output.split(separator: "\n").suffix(20) { print("    \(line)") }
            return result.status == ExitStatus.missingPrerequisites ? result.status : ExitStatus.serviceFailed
        }
        let topology = await TopologyCommand.run(
            settings: settings, replicas: 1, logger: logger, print: { progress.line($0) }, report: { print("infra-up: \($0)") })
        let report = await status()
        for line in report.table { print(line) }
        return report.healthy && topology == 0 ? ExitStatus.healthy : ExitStatus.serviceFailed
    }

    public func down(volumes: Bool) async -> Int32 {
        let result = await runCompose(["down"] + (volumes ? ["--volumes"] : []))
        for line in result.output.split(separator: "\n").suffix(20) { print(String(line)) }
        return result.status == 0 ? ExitStatus.healthy : ExitStatus.serviceFailed
    }

    public func logs(_ service: String, follow: Bool, lines: Int) async -> Int32 {
        let result = await runCompose(["logs", "--no-color", "--tail", "\(lines)"] + (follow ? ["--follow"] : []) + [service])
        print(result.output)
        return result.status == 0 ? ExitStatus.healthy : ExitStatus.serviceFailed
    }

    /// Every service probed through its published port, the migrations read back.
    public func status() async -> StackReport {
        let natsPort = NativeConfigs(settings: settings, root: "").natsPort
        let checks: [(String, Int, Readiness.Probe)] = [
            ("postgres", settings.postgres.port, .postgres(
                port: settings.postgres.port, user: settings.postgres.user, password: settings.postgres.password.value,
                database: settings.postgres.database)),
            ("redis", settings.redis.port, .redis(port: settings.redis.port, password: settings.redis.password.value)),
            ("nats", natsPort, .nats(port: natsPort, user: settings.nats.user, password: settings.nats.password.value)),
            ("nats-exporter", settings.nats.exporterPort, .http(port: settings.nats.exporterPort, path: "/metrics")),
            ("postgres-exporter", settings.postgres.exporterPort, .http(port: settings.postgres.exporterPort, path: "/metrics")),
            ("redis-exporter", settings.redis.exporterPort, .http(port: settings.redis.exporterPort, path: "/metrics")),
            ("prometheus", settings.prometheusPort, .prometheus(port: settings.prometheusPort)),
            ("grafana", settings.grafana.port, .http(port: settings.grafana.port, path: "/api/health")),
        ]
        var services: [StackReport.Service] = []
        for (name, port, probe) in checks {
            var service = StackReport.Service(name: name, address: "127.0.0.1:\(port)", state: "unhealthy", data: "volume \(name)-data")
            do {
                service.version = try await Readiness.check(probe, timeout: .seconds(3))
                service.state = "healthy"
            } catch {
                service.detail = error.message
            }
            services.append(service)
        }
        var report = StackReport(mode: "docker", root: projectRoot, services: services)
        // The migrations and the topology, read back as in native mode.
        let native = NativeStack(projectRoot: projectRoot, settings: settings, natsNodes: 1, logger: logger, print: print)
        await native.inspect(&report, plan: native.plan(ServerBinaries()), topologyItems: nil)
        return report
    }
}
