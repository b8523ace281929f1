import Foundation
import Infra
import Logging
import PGWire
import Settings
import Synchronization
import TestSupport
import Testing

/// A migration file's text.
func migrationText(_ id: String, parent: String?, transactional: Bool = true, up: String, down: String = "SELECT 1;") -> String {
    """
    -- revision: \(id)
    -- down_revision: \(parent ?? "none")
    -- message: test \(id)
    \(transactional ? "" : "-- transactional: false\n")-- up
    \(up)
    -- down
    \(down)

    """
}

func migration(_ id: String, parent: String?, transactional: Bool = true, up: String = "SELECT 1;", down: String = "SELECT 1;") throws -> Migration {
    try Migration(fileName: "\(id)_test.sql", text: migrationText(id, parent: parent, transactional: transactional, up: up, down: down))
}

@Suite("Migration files, graph and plan")
struct MigrationPlanTests {
    let a = "aaaaaaaaaaa1", b = "bbbbbbbbbbb2", c = "ccccccccccc3", d = "ddddddddddd4"

    @Test func aFileIsReadWithItsHeaderSectionsAndLines() throws {
        let text = "-- revision: \(a)\n-- down_revision: none\n-- message: first\n-- transactional: false\n\n-- up\nCREATE TABLE t (x int);\r\n-- down\nDROP TABLE t;\n"
        let parsed = try Migration(fileName: "\(a)_first.sql", text: text)
        #expect(parsed.id == a && parsed.parent == nil && parsed.message == "first" && !parsed.isTransactional)
        #expect(parsed.up == "CREATE TABLE t (x int);" && parsed.down == "DROP TABLE t;\n")
        #expect(parsed.upLine == 7 && parsed.downLine == 9)
        // Line endings do not change the checksum.
        let unix = try Migration(fileName: "\(a)_first.sql", text: text.replacingOccurrences(of: "\r\n", with: "\n"))
        #expect(unix.checksum == parsed.checksum && parsed.checksum.count == 64)
    }

    @Test func malformedFilesNameTheFileAndLine() {
        let cases: [(String, String, String)] = [
            ("\(a)_x.sql", "-- revision: \(a)\n-- down\nx\n", "\(a)_x.sql:2: no `-- up`"),
            ("\(a)_x.sql", "-- revision: \(a)\n-- up\nx\n", "no `-- down`"),
            ("\(a)_x.sql", "-- revision: XYZ\n-- up\n-- down\n", "12 lowercase"),
            ("\(a)_x.sql", "-- revision: \(a)\n-- colour: red\n-- up\n-- down\n", "unknown header key"),
            ("other.sql", "-- revision: \(a)\n-- up\n-- down\n", "must start with its revision"),
            ("\(a)_x.sql", "CREATE TABLE t();\n-- up\n-- down\n", "\(a)_x.sql:1"),
            ("\(a)_x.sql", "-- revision: \(a)\n-- up\n-- down\n-- up\n", "second `-- up`"),
        ]
        for (name, text, expected) in cases {
            let error = #expect(throws: MigrationError.self) { try Migration(fileName: name, text: text) }
            #expect(error?.kind == .invalidFile && error?.message.contains(expected) == true, "\(String(describing: error))")
        }
    }

    @Test func aGraphThatIsNotOneLineIsRefusedNamingTheFiles() throws {
        let heads = #expect(throws: MigrationError.self) {
            try MigrationGraph([try migration(a, parent: nil), try migration(b, parent: a), try migration(c, parent: a)])
        }
        #expect(heads?.message.contains("2 children") == true && heads?.message.contains("\(c)_test.sql") == true)
        let missing = #expect(throws: MigrationError.self) { try MigrationGraph([try migration(a, parent: nil), try migration(b, parent: d)]) }
        #expect(missing?.message.contains("builds on revision \(d)") == true)
        let duplicate = #expect(throws: MigrationError.self) { try MigrationGraph([try migration(a, parent: nil), try migration(a, parent: nil)]) }
        #expect(duplicate?.message.contains("defined twice") == true)
        let cycle = #expect(throws: MigrationError.self) {
            try MigrationGraph([try migration(a, parent: nil), try migration(b, parent: c), try migration(c, parent: b)])
        }
        #expect(cycle?.kind == .invalidGraph, "\(String(describing: cycle))")
        let roots = #expect(throws: MigrationError.self) { try MigrationGraph([try migration(a, parent: nil), try migration(b, parent: nil)]) }
        #expect(roots?.message.contains("several first revisions") == true)
    }

    @Test func upgradesAndDowngradesPlanTheRightSteps() throws {
        let graph = try MigrationGraph([try migration(c, parent: b), try migration(a, parent: nil), try migration(b, parent: a), try migration(d, parent: c)])
        #expect(graph.ordered.map(\.id) == [a, b, c, d])
        #expect(try MigrationPlanner.upgrade(graph, applied: [], to: .head).map(\.id) == [a, b, c, d])
        #expect(try MigrationPlanner.upgrade(graph, applied: [a], to: .relative(2)).map(\.id) == [b, c])
        #expect(try MigrationPlanner.upgrade(graph, applied: [a], to: .revision("ccc")).map(\.id) == [b, c], "a unique prefix names a revision")
        #expect(try MigrationPlanner.upgrade(graph, applied: [a, b, c, d], to: .head).isEmpty)
        #expect(try MigrationPlanner.downgrade(graph, applied: [a, b, c], to: .relative(1)).map(\.id) == [c])
        #expect(try MigrationPlanner.downgrade(graph, applied: [a, b, c], to: .revision(a)).map(\.id) == [c, b])
        #expect(try MigrationPlanner.downgrade(graph, applied: [a, b, c], to: .base).map(\.id) == [c, b, a])
        #expect(throws: MigrationError.self) { try MigrationPlanner.upgrade(graph, applied: [a], to: .relative(4)) }
        #expect(throws: MigrationError.self) { try MigrationPlanner.downgrade(graph, applied: [a], to: .relative(2)) }
        let unknown = #expect(throws: MigrationError.self) { try MigrationPlanner.upgrade(graph, applied: [a, "eeeeeeeeeee5"], to: .head) }
        #expect(unknown?.kind == .historyMismatch && unknown?.message.contains("no file") == true)
        let gap = #expect(throws: MigrationError.self) { try MigrationPlanner.upgrade(graph, applied: [a, c], to: .head) }
        #expect(gap?.message.contains("not \(b)") == true)
        #expect(try UpgradeTarget(parsing: "+2") == .relative(2) && DowngradeTarget(parsing: "-1") == .relative(1))
    }

    @Test func statementsAreSplitAtTopLevelSemicolonsOnly() {
        let sql = """
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
            -- a comment; with a semicolon
            INSERT INTO t VALUES ('a;b', "x;y", E'it''s; fine');
            /* block; /* nested; */ still; */ SELECT 2;
            SELECT $$;$$
            """
        let statements = SQLStatements.split(sql).map { $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(statements.count == 4, "\(statements)")
        #expect(statements.first?.hasSuffix("$body$;") == true)
        #expect(statements.last == "SELECT $$;$$")
    }
}

// MARK: - Live

extension LiveServer {
    /// A database of the test's own, dropped when the test ends.
    static func scratchDatabase() async throws -> (name: String, configuration: PostgresConfiguration, drop: @Sendable () async -> Void) {
        let admin = try poolPostgresConfiguration()
        let name = "migrate_" + UUID().uuidString.prefix(8).lowercased()
        let connection = try await PostgresConnection.connect(admin)
        _ = try await connection.simpleQuery("CREATE DATABASE \(name)")
        connection.close()
        var configuration = admin
        configuration.database = name
        let drop: @Sendable () async -> Void = {
            guard let connection = try? await PostgresConnection.connect(admin) else { return }
            _ = try? await connection.simpleQuery("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            connection.close()
        }
        return (name, configuration, drop)
    }

    static func runner(_ graph: MigrationGraph, _ configuration: PostgresConfiguration, options: MigrationOptions = MigrationOptions())
        -> MigrationRunner
    {
        MigrationRunner(graph: graph, options: options) { try await PostgresConnection.connect(configuration) }
    }

    /// `pg_dump --schema-only` of a database, without its comments and settings lines.
    static func schemaDump(_ database: String) async throws -> String {
        let bindir = try require("INFRA_TEST_POSTGRES_BINDIR")
        let output = try await runCommand(
            bindir + "/pg_dump",
            ["--schema-only", "--no-owner", "-h", try require("INFRA_TEST_POSTGRES_HOST"), "-p", try require("INFRA_TEST_POSTGRES_PORT"),
             "-U", try require("INFRA_TEST_POSTGRES_USER"), database],
            environment: ["PGPASSWORD": try require("INFRA_TEST_POSTGRES_PASSWORD"), "PATH": "/usr/bin:/bin"])
        // Comments, settings and the random key of pg_dump's `\restrict` lines differ between dumps.
        return output.text.split(separator: "\n").filter {
            !$0.hasPrefix("--") && !$0.hasPrefix("SET ") && !$0.isEmpty && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict")
        }.joined(separator: "\n")
    }

    /// The repository's migrations/ directory.
    static var migrationsDirectory: String {
        GoldenStream.fixturesDirectory.deletingLastPathComponent().appendingPathComponent("migrations").path
    }
}

@Suite("Migration runner (live PostgreSQL)", .serialized, .timeLimit(.minutes(2)), .enabled(if: LiveServer.postgres.isAvailable))
struct MigrationRunnerLiveTests {
    @Test func theSchemaUpgradesDowngradesToBaseAndUpgradesAgainIdentically() async throws {
        let (name, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let graph = try MigrationGraph(try Migration.load(directory: LiveServer.migrationsDirectory))
        #expect(graph.ordered.count >= 2 && graph.ordered.contains { !$0.isTransactional }, "the schema has a CONCURRENTLY migration")
        let runner = LiveServer.runner(graph, configuration)
        #expect(try await runner.upgrade().count == graph.ordered.count)
        let first = try await LiveServer.schemaDump(name)
        #expect(first.contains("CREATE TABLE public.transcription_segments") && first.contains("processing_jobs_runnable"))
        #expect(try await runner.current()?.id == graph.head?.id)
        #expect(try await runner.check().isConsistent)
        // Nothing to do: the common case at every start, timed with its connect.
        let start = ContinuousClock.now
        #expect(try await runner.upgrade().isEmpty)
        print("upgrade head with nothing to apply, connect included (debug build): \(start.duration(to: .now))")

        #expect(try await runner.downgrade(to: .base).count == graph.ordered.count)
        let empty = try await LiveServer.schemaDump(name)
        #expect(!empty.contains("audio_files"), "base has no tables but the history")
        try await runner.upgrade()
        #expect(try await LiveServer.schemaDump(name) == first, "upgrade, downgrade to base and upgrade again give the same schema")
    }

    @Test func theOfflineSQLAppliedWithPsqlGivesTheSameSchema() async throws {
        let (name, configuration, drop) = try await LiveServer.scratchDatabase()
        let (other, _, dropOther) = try await LiveServer.scratchDatabase()
        defer { Task { await drop(); await dropOther() } }
        let graph = try MigrationGraph(try Migration.load(directory: LiveServer.migrationsDirectory))
        try await LiveServer.runner(graph, configuration).upgrade()
        let sql = try MigrationRunner.sql(graph, from: nil, to: .head)
        let directory = try LiveServer.scratchDirectory("migrate-sql")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("upgrade.sql")
        try sql.write(to: file, atomically: true, encoding: .utf8)
        _ = try await runCommand(
            try LiveServer.require("INFRA_TEST_POSTGRES_BINDIR") + "/psql",
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", try LiveServer.require("INFRA_TEST_POSTGRES_HOST"), "-p", try LiveServer.require("INFRA_TEST_POSTGRES_PORT"),
             "-U", try LiveServer.require("INFRA_TEST_POSTGRES_USER"), "-d", other, "-f", file.path],
            environment: ["PGPASSWORD": try LiveServer.require("INFRA_TEST_POSTGRES_PASSWORD"), "PATH": "/usr/bin:/bin"])
        #expect(try await LiveServer.schemaDump(other) == LiveServer.schemaDump(name))
    }

    @Test func tenRunnersAtOnceApplyEachMigrationOnce() async throws {
        let (_, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let a = "a0a0a0a0a0a1", b = "b0b0b0b0b0b2", c = "c0c0c0c0c0c3"
        // Each migration counts its runs in a table of its own: a second run would show.
        let graph = try MigrationGraph([
            try migration(a, parent: nil, up: "CREATE TABLE runs (id text); INSERT INTO runs VALUES ('a'); SELECT pg_sleep(0.2);"),
            try migration(b, parent: a, up: "INSERT INTO runs VALUES ('b'); SELECT pg_sleep(0.1);"),
            try migration(c, parent: b, transactional: false, up: "INSERT INTO runs VALUES ('c');\nCREATE INDEX CONCURRENTLY runs_id ON runs (id);"),
        ])
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<10 { group.addTask { try await LiveServer.runner(graph, configuration).upgrade().count } }
            var total = 0
            for try await count in group { total += count }
            return total
        }
        #expect(applied == 3, "three migrations applied in all, by whichever runner had the lock")
        let connection = try await PostgresConnection.connect(configuration)
        defer { connection.close() }
        let runs = try await connection.execute("SELECT id FROM runs ORDER BY id").rows.map { try $0.decode(String.self, column: 0) }
        #expect(runs == ["a", "b", "c"])
    }

    @Test func aFailingMigrationLeavesThePreviousRevisionAndSaysWhere() async throws {
        let (_, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let a = "a1a1a1a1a1a1", b = "b2b2b2b2b2b2"
        let graph = try MigrationGraph([
            try migration(a, parent: nil, up: "CREATE TABLE kept (x int);"),
            try migration(b, parent: a, up: "CREATE TABLE lost (x int);\nINSERT INTO lost VALUES (1);\nSELEC 2;"),
        ])
        let runner = LiveServer.runner(graph, configuration)
        let error = await #expect(throws: MigrationError.self) { try await runner.upgrade() }
        #expect(error?.kind == .statementFailed && error?.sqlState == "42601", "\(String(describing: error))")
        // The up section starts on line 5 (after three header lines and `-- up`); the bad
        // statement is its third line.
        #expect(error?.message.hasPrefix("\(b)_test.sql:7:1") == true, "\(String(describing: error))")
        #expect(try await runner.current()?.id == a)
        let connection = try await PostgresConnection.connect(configuration)
        defer { connection.close() }
        let lost = try await connection.execute("SELECT to_regclass('lost') IS NULL").rows.first?.decode(Bool.self, column: 0)
        #expect(lost == true, "the failed migration's work was rolled back with it")
    }

    @Test func anInterruptedNonTransactionalMigrationIsCaughtOnTheNextRun() async throws {
        let (name, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let a = "a3a3a3a3a3a3", b = "b4b4b4b4b4b4"
        let graph = try MigrationGraph([
            try migration(a, parent: nil, up: "CREATE TABLE items (x int);"),
            try migration(b, parent: a, transactional: false, up: "SELECT pg_sleep(3);\nCREATE INDEX CONCURRENTLY items_x ON items (x);",
                down: "DROP INDEX CONCURRENTLY IF EXISTS items_x;"),
        ])
        var runnerConfiguration = configuration
        runnerConfiguration.applicationName = "interrupted-runner"
        let runner = LiveServer.runner(graph, runnerConfiguration)
        let upgrade = Task { try await runner.upgrade() }
        // Kill the runner's connection while its non-transactional migration runs.
        let killer = try await PostgresConnection.connect(configuration)
        defer { killer.close() }
        var killed = false
        for _ in 0..<100 where !killed {
            try await Task.sleep(for: .milliseconds(50))
            let result = try await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(name) AND application_name = 'interrupted-runner' AND query LIKE '%pg_sleep%'")
            killed = !result.rows.isEmpty
        }
        #expect(killed)
        await #expect(throws: MigrationError.self) { try await upgrade.value }
        let next = LiveServer.runner(graph, configuration)
        let error = await #expect(throws: MigrationError.self) { try await next.upgrade() }
        #expect(error?.kind == .historyMismatch && error?.message.contains("without finishing") == true, "\(String(describing: error))")
        #expect(error?.message.contains("stamp \(a)") == true, "it says how to resolve it")
        #expect(try await next.check().unfinished.count == 1)
        // Resolved as the message says: stamp the parent, and the migration runs again.
        try await next.stamp(a)
        #expect(try await next.upgrade().map(\.id) == [b])
        #expect(try await next.check().isConsistent)
    }

    @Test func aFileEditedAfterItRanIsReportedAndRefusedUnlessAllowed() async throws {
        let (_, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let a = "a5a5a5a5a5a5", b = "b6b6b6b6b6b6"
        let original = try MigrationGraph([try migration(a, parent: nil, up: "CREATE TABLE t (x int);")])
        try await LiveServer.runner(original, configuration).upgrade()
        let edited = try MigrationGraph([
            try migration(a, parent: nil, up: "CREATE TABLE t (x bigint);"), try migration(b, parent: a, up: "CREATE TABLE u (y int);"),
        ])
        let runner = LiveServer.runner(edited, configuration)
        let check = try await runner.check()
        #expect(check.edited.count == 1 && check.edited.first?.hasPrefix(a) == true && check.pending == [b])
        let error = await #expect(throws: MigrationError.self) { try await runner.upgrade() }
        #expect(error?.message.contains("edited after it was applied") == true && error?.message.contains("--allow-edited \(a)") == true)
        var options = MigrationOptions()
        options.allowEdited = [a]
        #expect(try await LiveServer.runner(edited, configuration, options: options).upgrade().map(\.id) == [b])
        #expect(try await runner.check().isConsistent, "the deliberate edit's checksum is recorded")
    }
}

/// What `infra-up migrate` prints and returns, run in-process.
final class CommandTranscript: @unchecked Sendable {
    // Safe: the command runs on one task, and the test reads the lines after it returned.
    var lines: [String] = []
    var problems: [String] = []
}

@Suite("infra-up migrate (live PostgreSQL)", .serialized, .timeLimit(.minutes(1)), .enabled(if: LiveServer.postgres.isAvailable))
struct MigrateCommandTests {
    func run(_ arguments: [String], settings: Settings = Settings()) async -> (status: Int32, transcript: CommandTranscript) {
        let transcript = CommandTranscript()
        let status = await MigrateCommand.run(
            arguments, settings: { settings }, logger: Logger(label: "migrate-tests"), print: { transcript.lines.append($0) },
            report: { transcript.problems.append($0) })
        return (status, transcript)
    }

    @Test func theVerbsWorkFromTheCommandLine() async throws {
        let (name, configuration, drop) = try await LiveServer.scratchDatabase()
        defer { Task { await drop() } }
        let directory = try LiveServer.scratchDirectory("migrate-cli")
        defer { try? FileManager.default.removeItem(at: directory) }
        for file in try FileManager.default.contentsOfDirectory(atPath: LiveServer.migrationsDirectory) {
            try FileManager.default.copyItem(
                atPath: LiveServer.migrationsDirectory + "/" + file, toPath: directory.appendingPathComponent(file).path)
        }
        var settings = Settings()
        settings.databaseURL = "postgresql://\(configuration.user)@\(configuration.hosts[0].host):\(configuration.hosts[0].port)/\(name)"
        settings.postgres.password = Secret(configuration.password ?? "")
        let dir = ["--dir", directory.path]

        let heads = await run(["heads"] + dir)
        #expect(heads.status == 0 && heads.transcript.lines.first?.contains("(head)") == true)
        let created = await run(["revision", "-m", "Add a notes column!"] + dir)
        #expect(created.status == 0 && created.transcript.lines.first?.hasSuffix("_add_a_notes_column.sql") == true, "\(created.transcript.lines)")
        let path = try #require(created.transcript.lines.first)
        try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "-- up\n", with: "-- up\nALTER TABLE users ADD COLUMN notes text;\n")
            .replacingOccurrences(of: "-- down\n", with: "-- down\nALTER TABLE users DROP COLUMN notes;\n")
            .write(toFile: path, atomically: true, encoding: .utf8)

        #expect(await run(["current"] + dir, settings: settings).transcript.lines == ["base (nothing applied)"])
        let upgrade = await run(["upgrade"] + dir, settings: settings)
        #expect(upgrade.status == 0 && upgrade.transcript.lines.first?.split(separator: "\n").count == 3, "\(upgrade.transcript.problems)")
        #expect(await run(["current"] + dir, settings: settings).transcript.lines.first?.hasSuffix("(head)") == true)
        #expect(await run(["check"] + dir, settings: settings).status == 0)
        let history = await run(["history", "--verbose"] + dir, settings: settings)
        #expect(history.transcript.lines.filter { $0.contains("[applied]") }.count == 3)
        let down = await run(["downgrade", "-1"] + dir, settings: settings)
        #expect(down.status == 0 && down.transcript.lines.first?.hasPrefix("undid") == true)
        // Editing an applied file makes check fail and upgrade refuse.
        let first = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).first { $0.hasPrefix("5c1e0a7d2b94") })
        let firstPath = directory.appendingPathComponent(first).path
        try (try String(contentsOfFile: firstPath, encoding: .utf8)).replacingOccurrences(of: "-- up\n", with: "-- up\n-- edited\n")
            .write(toFile: firstPath, atomically: true, encoding: .utf8)
        #expect(await run(["check"] + dir, settings: settings).status == 1)
        let refused = await run(["upgrade"] + dir, settings: settings)
        #expect(refused.status == 1 && refused.transcript.problems.first?.contains("edited after it was applied") == true)
        #expect(await run(["upgrade", "--allow-edited", "5c1e0a7d2b94"] + dir, settings: settings).status == 0)
        #expect(await run(["bogus"] + dir).status == 64)
    }
}
