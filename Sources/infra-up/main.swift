// infra-up: brings up the local stack (PostgreSQL, Redis, NATS with JetStream, Prometheus, the
// exporters; Grafana in Docker mode), applies the migrations and the NATS topology, and reports.

import ArgumentParser
import Foundation
import Infra
import Logging
import Settings

#if canImport(Glibc)
import Glibc
#endif

func standardError(_ text: String) {
    let line = text.hasSuffix("\n") ? text : text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

func standardOutput(_ text: String) {
    let line = text.hasSuffix("\n") ? text : text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
}

/// A failure that has been reported already and only sets the exit status.
struct Exit: Error {
    var status: Int32
}

enum Mode: String, ExpressibleByArgument, CaseIterable {
    case auto, native, docker
}

extension StackProfile: ExpressibleByArgument {}

struct GlobalOptions: ParsableArguments {
    @Option(help: "The settings environment (development, testing, production); default: ENV_FOR_DYNACONF or development.")
    var env: String?

    @Option(help: "native, docker, or auto: Docker Compose when a Docker engine answers and Compose is installed, else native.")
    var mode: Mode = .auto

    @Option(help: "The project folder: settings.toml, migrations/ and .infra/ (default: the current folder).")
    var root: String?

    var projectRoot: String {
        let folder = root ?? FileManager.default.currentDirectoryPath
        return URL(fileURLWithPath: folder).standardizedFileURL.path
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if let env { environment["ENV_FOR_DYNACONF"] = env }
        return environment
    }

    /// Loads the settings of the project; the generated PostgreSQL password (native mode) is
    /// filled in when none is configured, created first when `createSecrets` is set.
    func settings(createSecrets: Bool = false) throws(Exit) -> (Settings, SettingsLoader.Result, generatedPassword: Bool) {
        let loaded: SettingsLoader.Result
        let settings: Settings
        do {
            loaded = try SettingsLoader(root: projectRoot).load(environment: environment)
            settings = try Settings(decoding: loaded)
        } catch {
            standardError("infra-up: the settings cannot be loaded: \(error)")
            throw Exit(status: ExitStatus.missingPrerequisites)
        }
        do {
            let infra = (projectRoot as NSString).appendingPathComponent(".infra")
            let (filled, generated) = try NativeStack.withGeneratedSecrets(settings, infraDirectory: infra, create: createSecrets)
            return (filled, loaded, generated)
        } catch {
            standardError("infra-up: \(error)")
            throw Exit(status: ExitStatus.serviceFailed)
        }
    }

    /// The mode to use: auto picks Docker only when `docker info` answers and Compose exists.
    func resolvedMode() async -> Mode {
        switch mode {
        case .native, .docker: return mode
        case .auto: return await DockerStack.isAvailable() ? .docker : .native
        }
    }
}

func makeLogger() -> Logger {
    Logger(label: "infra-up")
}

@main
struct InfraUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infra-up",
        abstract: "Bring up the transcription stack: PostgreSQL, Redis, NATS with JetStream, Prometheus (and Grafana in Docker mode).",
        discussion: """
            Without a subcommand, `up`. Native mode runs the servers from the distribution's packages under .infra/ \
            (installing missing packages with apt-get when run as root); Docker mode runs docker-compose.yml.

            Exit status: 0 healthy; 1 a service, migration or topology step failed; 2 usage error; 3 missing prerequisites \
            (server packages, unreadable settings).
            """,
        version: InfraVersion.current,
        subcommands: [Up.self, Down.self, Status.self, Logs.self, Migrate.self, Config.self, NATSTopologyCommand.self, NATSExporterCommand.self],
        defaultSubcommand: Up.self)

    static func main() async {
        // Logs go to standard error, warnings and worse unless INFRA_UP_DEBUG is set.
        let level: Logger.Level = ProcessInfo.processInfo.environment["INFRA_UP_DEBUG"] == nil ? .warning : .debug
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        let status = await Task.detached { () -> Int32 in
            do {
                var command = try parseAsRoot(arguments)
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
                return 0
            } catch let exit as Exit {
                return exit.status
            } catch {
                let code = exitCode(for: error)
                if code == .success {
                    standardOutput(fullMessage(for: error))
                    return 0
                }
                standardError(fullMessage(for: error))
                return code == .validationFailure ? ExitStatus.usage : code.rawValue
            }
        }.value
        Glibc.exit(status)
    }
}

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start what is not running, wait for every service, migrate, create the NATS topology, print the health table.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("nats-cluster"), help: "NATS nodes: 1, or 3 or more for a cluster with streams replicated three times (default: NATS.CLUSTER_SIZE).")
    var natsCluster: Int?

    @Option(help: "Seconds to wait for the services to be ready.")
    var timeout: Int = 90

    @Flag(help: "Do not install missing server packages; print the commands instead.")
    var noInstall = false

    @Option(help: "full: the development stack; test: PostgreSQL, Redis and NATS only, tuned for the test suite, no migrations or topology (native mode).")
    var profile: StackProfile = .full

    func validate() throws {
        if let natsCluster, natsCluster < 1 || natsCluster == 2 || natsCluster > 7 {
            throw ValidationError("--nats-cluster takes 1, or 3 to 7 (a JetStream cluster needs a quorum)")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let (settings, _, _) = try global.settings(createSecrets: true)
        let progress = Progress.standardOutput()
        let status: Int32
        switch await global.resolvedMode() {
        case .docker:
            status = await DockerStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput)
                .up(timeout: .seconds(timeout), progress: progress)
        default:
            let stack = NativeStack(
                projectRoot: global.projectRoot, settings: settings, natsNodes: natsCluster, profile: profile, logger: makeLogger(), print: standardOutput)
            status = await stack.up(timeout: .seconds(timeout), install: !noInstall, progress: progress)
        }
        if status != 0 { throw Exit(status: status) }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop what `up` started (nothing else).")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Also delete the data: .infra/ in native mode, the named volumes in Docker mode.")
    var volumes = false

    func run() async throws {
        let (settings, _, _) = try global.settings()
        let status: Int32
        switch await global.resolvedMode() {
        case .docker:
            status = await DockerStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput).down(volumes: volumes)
        default:
            status = await NativeStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput).down(volumes: volumes)
        }
        if status != 0 { throw Exit(status: status) }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Probe every service, the migrations and the NATS topology.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(name: .customLong("nats-cluster"), help: "NATS nodes the stack was started with (default: NATS.CLUSTER_SIZE, or what runs).")
    var natsCluster: Int?

    @Option(help: "The profile the stack was brought up with (full or test).")
    var profile: StackProfile = .full

    func run() async throws {
        let (settings, _, _) = try global.settings()
        let report: StackReport
        switch await global.resolvedMode() {
        case .docker:
            report = await DockerStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput).status()
        default:
            let nodes = natsCluster ?? NativeStack.runningNATSNodes(projectRoot: global.projectRoot)
            report = await NativeStack(
                projectRoot: global.projectRoot, settings: settings, natsNodes: nodes, profile: profile, logger: makeLogger(), print: standardOutput
            ).status()
        }
        if json {
            standardOutput(report.json)
        } else {
            for line in report.table { standardOutput(line) }
        }
        if !report.healthy { throw Exit(status: ExitStatus.serviceFailed) }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a service's log (native: .infra/logs/SERVICE.log).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "postgres, redis, nats (nats-1 … in a cluster), nats-exporter, postgres-exporter, redis-exporter, prometheus.")
    var service: String

    @Flag(name: .shortAndLong, help: "Keep printing what is appended.")
    var follow = false

    @Option(name: [.customShort("n"), .long], help: "Lines from the end to print first.")
    var lines: Int = 100

    func run() async throws {
        let (settings, _, _) = try global.settings()
        if await global.resolvedMode() == .docker {
            let status = await DockerStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput)
                .logs(service, follow: follow, lines: lines)
            if status != 0 { throw Exit(status: status) }
            return
        }
        let stack = NativeStack(projectRoot: global.projectRoot, settings: settings, logger: makeLogger(), print: standardOutput)
        guard let path = stack.logFile(service) else {
            standardError("infra-up: no log for \(service) under \(stack.root)/logs (has `up` run?)")
            throw Exit(status: ExitStatus.usage)
        }
        try await LogFollower.print(path: path, lines: lines, follow: follow, output: standardOutput)
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The migration runner: upgrade, downgrade, current, history, heads, revision, stamp, check, sql.",
        discussion: MigrateCommand.usage)

    @OptionGroup var global: GlobalOptions

    @Argument(parsing: .captureForPassthrough, help: "The verb and its arguments (see `infra-up migrate --help`).")
    var arguments: [String] = []

    func run() async throws {
        let projectRoot = global.projectRoot
        var arguments = arguments
        if !arguments.contains("--dir") { arguments += ["--dir", (projectRoot as NSString).appendingPathComponent("migrations")] }
        let status = await MigrateCommand.run(
            arguments, settings: { try global.settings().0 }, logger: makeLogger(), print: { standardOutput($0) }, report: standardError)
        if status != 0 { throw Exit(status: status == 64 ? ExitStatus.usage : status) }
    }
}

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every resolved setting with its source, secrets masked.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let (settings, loaded, generated) = try global.settings()
        var sources: [String: String] = [:]
        if generated {
            let file = NativeStack.generatedPasswordFile(infraDirectory: (global.projectRoot as NSString).appendingPathComponent(".infra"))
            sources["POSTGRES.PASSWORD"] = file + " (generated by `up`)"
        }
        for line in ConfigCommand.lines(settings, loaded, json: json, sources: sources) { standardOutput(line) }
    }
}

struct NATSTopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nats-topology", abstract: "Apply the streams and buckets of the settings to NATS_URL and show them.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Replicas of every stream and bucket (3 on a cluster).")
    var replicas: Int?

    func run() async throws {
        let (settings, _, _) = try global.settings()
        let status = await TopologyCommand.run(
            settings: settings, replicas: replicas ?? (settings.nats.clusterSize >= 3 ? 3 : 1), logger: makeLogger(),
            print: { standardOutput($0) }, report: standardError)
        if status != 0 { throw Exit(status: status) }
    }
}

struct NATSExporterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nats-exporter",
        abstract: "Serve Prometheus metrics from nats-server's /varz, /jsz and /healthz (prometheus-nats-exporter's names).")

    @Option(help: "The port to serve /metrics on (127.0.0.1).")
    var port: Int = 7777

    @Option(name: .customLong("monitor-port"), help: "A nats-server monitoring port; repeat for every node.")
    var monitorPorts: [Int] = [8222]

    func run() async throws {
        let exporter = NATSExporter(monitorPorts: monitorPorts)
        do {
            try await exporter.serve(port: port, logger: makeLogger())
        } catch {
            standardError("nats-exporter: \(error)")
            throw Exit(status: ExitStatus.serviceFailed)
        }
    }
}
