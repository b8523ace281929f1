import Foundation
import Logging
import PGWire
import Settings

/// `infra-up migrate VERB …`: Alembic's verbs over `migrations/`, against the database the
/// settings name (DATABASE_URL with [postgres]).
public enum MigrateCommand {
    public static let usage = """
        usage: infra-up migrate VERB [ARGS] [--dir DIR] [--allow-edited ID] [--lock-timeout SECONDS] [--statement-timeout SECONDS]
          upgrade [head | +N | ID]     apply revisions (default head)
          downgrade (-N | ID | base)   undo revisions
          current                      the applied revision
          history [--verbose]          every revision, applied or not
          heads                        the newest revision of the files
          revision -m MESSAGE          write a new migration file after the head
          stamp (ID | base)            record a revision as applied without running anything
          check                        compare the files with the database (edited, unknown, unfinished)
          sql [FROM:]TO                print the SQL an upgrade would run (FROM defaults to base)
        """

    /// Runs the command; returns the process's exit status. Output goes to `print`, problems to `report`.
    public static func run(
        _ arguments: [String], settings: () throws -> Settings, logger: Logger, print: (String) -> Void, report: (String) -> Void
    ) async -> Int32 {
        var rest: [String] = []
        var directory = "migrations"
        var options = MigrationOptions()
        var message: String?
        var verbose = false
        var index = 0
        func value(_ flag: String) -> String? {
            index += 1
            guard index < arguments.count else {
                report("\(flag) needs a value")
                return nil
            }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--dir": guard let text = value(argument) else { return 64 }; directory = text
            case "--allow-edited": guard let text = value(argument) else { return 64 }; options.allowEdited.insert(text)
            case "--lock-timeout":
                guard let text = value(argument), let seconds = Double(text) else { report("--lock-timeout takes seconds"); return 64 }
                options.lockTimeout = .milliseconds(Int64(seconds * 1000))
            case "--statement-timeout":
                guard let text = value(argument), let seconds = Double(text) else { report("--statement-timeout takes seconds"); return 64 }
                options.statementTimeout = .milliseconds(Int64(seconds * 1000))
            case "-m", "--message": guard let text = value(argument) else { return 64 }; message = text
            case "--verbose", "-v": verbose = true
            case "-h", "--help":
                print(usage)
                return 0
            default: rest.append(argument)
            }
            index += 1
        }
        guard let verb = rest.first else {
            report(usage)
            return 64
        }
        let target = rest.dropFirst().first
        do {
            let graph = try MigrationGraph(try Migration.load(directory: directory))
            // The verbs that need no database.
            switch verb {
            case "heads":
                print(graph.head.map { "\($0.id) (head) \($0.message)" } ?? "no revisions")
                return 0
            case "revision":
                guard let message else {
                    report("revision needs -m MESSAGE")
                    return 64
                }
                print(try MigrationRunner.newRevision(in: directory, message: message, graph: graph))
                return 0
            case "sql":
                let range = target ?? "head"
                let parts = range.split(separator: ":", maxSplits: 1).map(String.init)
                let from = parts.count == 2 ? (parts[0] == "base" ? nil : parts[0]) : nil
                print(try MigrationRunner.sql(graph, from: from, to: try UpgradeTarget(parsing: parts.last ?? "head")))
                return 0
            default:
                break
            }
            var connection = try PostgresConfiguration(settings: try settings(), applicationName: "infra-up migrate")
            connection.logger = logger
            let runner = MigrationRunner(graph: graph, options: options, logger: logger) { [connection] in
                try await PostgresConnection.connect(connection)
            }
            switch verb {
            case "upgrade":
                let applied = try await runner.upgrade(to: try UpgradeTarget(parsing: target ?? "head"))
                print(applied.isEmpty ? "nothing to apply" : applied.map { "applied \($0.id): \($0.message)" }.joined(separator: "\n"))
            case "downgrade":
                guard let target else {
                    report("downgrade needs a target: -N, a revision or base")
                    return 64
                }
                let undone = try await runner.downgrade(to: try DowngradeTarget(parsing: target))
                print(undone.isEmpty ? "nothing to undo" : undone.map { "undid \($0.id): \($0.message)" }.joined(separator: "\n"))
            case "current":
                if let current = try await runner.current() {
                    print("\(current.id)\(current.id == graph.head?.id ? " (head)" : "")\(current.finished ? "" : " (unfinished)")")
                } else {
                    print("base (nothing applied)")
                }
            case "history":
                let applied = Dictionary(uniqueKeysWithValues: try await runner.applied().map { ($0.id, $0) })
                for migration in graph.ordered.reversed() {
                    let row = applied[migration.id]
                    var line = "\(migration.parent ?? "<base>") -> \(migration.id)\(migration.id == graph.head?.id ? " (head)" : ""), \(migration.message)"
                    line += row == nil ? "  [pending]" : row?.finished == false ? "  [unfinished]" : "  [applied]"
                    print(line)
                    if verbose {
                        print("    file: \(migration.fileName)\(migration.isTransactional ? "" : ", non-transactional")")
                        if let row {
                            print("    applied at \(row.appliedAt) by \(row.appliedBy) in \(row.durationMilliseconds.map { "\($0) ms" } ?? "?"), \(row.runnerVersion)")
                            if row.checksum != migration.checksum { print("    EDITED since: checksum \(row.checksum) recorded, \(migration.checksum) now") }
                        }
                    }
                }
            case "stamp":
                guard let target else {
                    report("stamp needs a revision or base")
                    return 64
                }
                try await runner.stamp(target == "base" ? nil : target)
                print("stamped \(target)")
            case "check":
                let check = try await runner.check()
                for id in check.edited { print("edited after it was applied: \(id)") }
                for id in check.unknown { print("applied but in no file: \(id)") }
                for id in check.unfinished { print("started and not finished: \(id)") }
                print(check.pending.isEmpty ? "up to date" : "\(check.pending.count) revision(s) to apply: \(check.pending.joined(separator: ", "))")
                return check.isConsistent ? 0 : 1
            default:
                report("unknown verb \(verb)\n\(usage)")
                return 64
            }
            return 0
        } catch {
            report("migrate \(verb): \(error)")
            return 1
        }
    }
}
