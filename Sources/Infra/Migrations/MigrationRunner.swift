import Foundation
import Logging
import PGWire

/// How the runner locks and bounds each migration.
public struct MigrationOptions: Sendable {
    /// How long to wait for another runner's migration lock (polled, never a blocking wait).
    public var lockWait: Duration = .seconds(60)
    /// `lock_timeout` for each migration's statements: a migration waiting behind a long
    /// transaction fails rather than queueing every later query behind it.
    public var lockTimeout: Duration = .seconds(10)
    /// `statement_timeout` for each migration's statements; zero: none.
    public var statementTimeout: Duration = .zero
    /// Revisions whose edited files are accepted (their recorded checksum is updated).
    public var allowEdited: Set<String> = []
    /// Recorded as `applied_by`.
    public var appliedBy = "\(ProcessInfo.processInfo.userName)@\(ProcessInfo.processInfo.hostName)"

    public init() {}
}

/// A row of `schema_migrations`.
public struct AppliedRevision: Sendable, Equatable {
    public var id: String
    public var checksum: String
    public var message: String
    public var appliedAt: String
    public var durationMilliseconds: Int?
    public var appliedBy: String
    public var runnerVersion: String
    /// False for a non-transactional migration that started and did not finish.
    public var finished: Bool
}

/// What `check` found.
public struct MigrationCheck: Sendable, Equatable {
    /// Revisions in files, not yet applied.
    public var pending: [String] = []
    /// Applied revisions whose file changed since (id, file).
    public var edited: [String] = []
    /// Applied revisions no file defines.
    public var unknown: [String] = []
    /// Non-transactional migrations that started and did not finish.
    public var unfinished: [String] = []

    /// Whether the files and the database agree (pending revisions are not a problem).
    public var isConsistent: Bool { edited.isEmpty && unknown.isEmpty && unfinished.isEmpty }
}

/// Applies and undoes migrations on a PostgreSQL database, as Alembic's verbs do, with what
/// Alembic lacks: a migration lock so that concurrent deploys apply each revision once
/// (`pg_try_advisory_lock` polled under a deadline on a connection of its own — a blocking
/// `pg_advisory_lock` can deadlock with `CREATE INDEX CONCURRENTLY`, which waits for every
/// other transaction), checksums that catch a file edited after it ran, and a record of
/// non-transactional migrations that did not finish.
public struct MigrationRunner: Sendable {
    /// The version recorded with each applied revision.
    public static let version = "infra-migrate 1"
    /// The advisory lock's key ("migrate" in ASCII): the same for every runner of the database.
    public static let lockKey: Int64 = 0x6D69_6772_6174_65
    static let createHistory = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            id text PRIMARY KEY,
            checksum text NOT NULL,
            message text NOT NULL DEFAULT '',
            applied_at timestamptz NOT NULL DEFAULT now(),
            duration_ms integer,
            applied_by text NOT NULL DEFAULT current_user,
            runner_version text NOT NULL,
            finished boolean NOT NULL DEFAULT true
        )
        """

    public let graph: MigrationGraph
    public let options: MigrationOptions
    let connect: @Sendable () async throws -> PostgresConnection
    let logger: Logger

    public init(
        graph: MigrationGraph, options: MigrationOptions = MigrationOptions(), logger: Logger = Logger(label: "migrate"),
        connect: @escaping @Sendable () async throws -> PostgresConnection
    ) {
        self.graph = graph
        self.options = options
        self.logger = logger
        self.connect = connect
    }

    // MARK: - Verbs

    /// Applies the revisions up to `target`; returns those applied.
    @discardableResult
    public func upgrade(to target: UpgradeTarget = .head) async throws(MigrationError) -> [Migration] {
        try await withLockedConnection { connection throws(MigrationError) in
            let rows = try await history(connection)
            try verify(rows)
            await updateAllowedChecksums(on: connection)
            let steps = try MigrationPlanner.upgrade(graph, applied: rows.map(\.id), to: target)
            for migration in steps { try await step(migration, .up, on: connection) }
            return steps
        }
    }

    /// Undoes revisions down to `target`; returns those undone, newest first.
    @discardableResult
    public func downgrade(to target: DowngradeTarget) async throws(MigrationError) -> [Migration] {
        try await withLockedConnection { connection throws(MigrationError) in
            let rows = try await history(connection)
            try verify(rows)
            let steps = try MigrationPlanner.downgrade(graph, applied: rows.map(\.id), to: target)
            for migration in steps { try await step(migration, .down, on: connection) }
            return steps
        }
    }

    /// The applied revisions, oldest first.
    public func applied() async throws(MigrationError) -> [AppliedRevision] {
        try await withConnection { connection throws(MigrationError) in try await history(connection) }
    }

    /// The current revision (the newest applied), nil at base.
    public func current() async throws(MigrationError) -> AppliedRevision? {
        try await applied().last
    }

    /// Records the database as being at `revision` (or at base, with nil) without running
    /// anything: for a database migrated by other means, or after resolving an interrupted
    /// non-transactional migration by hand.
    public func stamp(_ revision: String?) async throws(MigrationError) {
        let keep: Int
        if let revision {
            let migration = try graph.resolve(revision)
            keep = (graph.position(of: migration.id) ?? 0) + 1
        } else {
            keep = 0
        }
        try await withLockedConnection { connection throws(MigrationError) in
            try await run(connection, "BEGIN")
            do throws(MigrationError) {
                try await run(connection, "DELETE FROM schema_migrations")
                for migration in graph.ordered.prefix(keep) {
                    try await record(migration, durationMilliseconds: nil, finished: true, on: connection)
                }
                try await run(connection, "COMMIT")
            } catch {
                try? await run(connection, "ROLLBACK")
                throw error
            }
        }
    }

    /// Compares the files with the database.
    public func check() async throws(MigrationError) -> MigrationCheck {
        let rows = try await applied()
        return Self.check(graph, rows)
    }

    static func check(_ graph: MigrationGraph, _ rows: [AppliedRevision]) -> MigrationCheck {
        var result = MigrationCheck()
        let appliedIDs = Set(rows.map(\.id))
        for row in rows {
            guard let position = graph.position(of: row.id) else {
                result.unknown.append(row.id)
                continue
            }
            let migration = graph.ordered[position]
            if migration.checksum != row.checksum { result.edited.append("\(row.id) (\(migration.fileName))") }
            if !row.finished { result.unfinished.append("\(row.id) (\(migration.fileName))") }
        }
        result.pending = graph.ordered.filter { !appliedIDs.contains($0.id) }.map(\.id)
        return result
    }

    // MARK: - Offline SQL

    /// The SQL an upgrade from `from` (nil: base) to `target` would run, for review or for
    /// applying with psql, as `alembic upgrade --sql` prints it; the history rows included.
    public static func sql(_ graph: MigrationGraph, from: String?, to target: UpgradeTarget) throws(MigrationError) -> String {
        var applied: [String] = []
        if let from {
            let start = try graph.resolve(from)
            applied = graph.ordered.prefix((graph.position(of: start.id) ?? 0) + 1).map(\.id)
        }
        let steps = try MigrationPlanner.upgrade(graph, applied: applied, to: target)
        var out = "-- Generated by \(version): \(from ?? "base") to \(steps.last?.id ?? from ?? "base")\n\n"
        out += createHistory + ";\n\n"
        for migration in steps {
            out += "-- \(migration.id): \(migration.message) (\(migration.fileName))\n"
            if migration.isTransactional { out += "BEGIN;\n" }
            var body = migration.up.trimmingCharacters(in: .whitespacesAndNewlines)
            if !body.hasSuffix(";") { body += ";" }
            out += body + "\n"
            out += "INSERT INTO schema_migrations (id, checksum, message, runner_version) VALUES ("
                + [migration.id, migration.checksum, migration.message, version].map(literal).joined(separator: ", ") + ");\n"
            if migration.isTransactional { out += "COMMIT;\n" }
            out += "\n"
        }
        return out
    }

    /// A SQL string literal.
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    // MARK: - New revisions

    /// Writes a new migration file after the head, with a fresh id; returns its path.
    public static func newRevision(in directory: String, message: String, graph: MigrationGraph) throws(MigrationError) -> String {
        var generator = SystemRandomNumberGenerator()
        var id = ""
        repeat {
            id = String((0..<12).map { _ in "0123456789abcdef".randomElement(using: &generator) ?? "0" })
        } while graph.position(of: id) != nil
        var slug = String(message.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(48))
        while slug.contains("__") { slug = slug.replacingOccurrences(of: "__", with: "_") }
        slug = slug.trimmingCharacters(in: CharacterSet(charactersIn: "_"))
        let name = slug.isEmpty ? "\(id).sql" : "\(id)_\(slug).sql"
        let path = (directory as NSString).appendingPathComponent(name)
        let text = """
            -- revision: \(id)
            -- down_revision: \(graph.head?.id ?? "none")
            -- message: \(message.replacingOccurrences(of: "\n", with: " "))
            -- up

            -- down

            """
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw MigrationError(.invalidFile, "cannot write \(path)")
        }
        return path
    }

    // MARK: - The shell

    private func withConnection<Result: Sendable>(_ body: (PostgresConnection) async throws(MigrationError) -> Result) async throws(MigrationError)
        -> Result
    {
        let connection: PostgresConnection
        do {
            connection = try await connect()
        } catch {
            throw MigrationError(.connection, "cannot connect to run migrations: \(error)")
        }
        defer { connection.close() }
        return try await body(connection)
    }

    /// Runs `body` holding the migration lock (session level, on this connection alone).
    private func withLockedConnection<Result: Sendable>(_ body: (PostgresConnection) async throws(MigrationError) -> Result)
        async throws(MigrationError) -> Result
    {
        try await withConnection { connection throws(MigrationError) in
            let deadline = ContinuousClock.now + options.lockWait
            var announced = false
            while true {
                let result = try await query(connection, "SELECT pg_try_advisory_lock(\(Self.lockKey))")
                if (try? result.rows.first?.decode(Bool.self, column: 0)) == true { break }
                guard ContinuousClock.now < deadline else {
                    throw MigrationError(.lockTimeout, "another runner holds the migration lock (key \(Self.lockKey)) after \(options.lockWait)")
                }
                if !announced {
                    logger.info("another runner is migrating; waiting for its lock")
                    announced = true
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
            do throws(MigrationError) {
                // Created under the lock: two sessions creating it at once collide in the catalog.
                try await run(connection, Self.createHistory)
                let result = try await body(connection)
                try? await run(connection, "SELECT pg_advisory_unlock(\(Self.lockKey))")
                return result
            } catch {
                // Closing the connection releases the lock too.
                try? await run(connection, "SELECT pg_advisory_unlock(\(Self.lockKey))")
                throw error
            }
        }
    }

    private func history(_ connection: PostgresConnection) async throws(MigrationError) -> [AppliedRevision] {
        let exists = try await query(connection, "SELECT to_regclass('schema_migrations') IS NOT NULL")
        guard (try? exists.rows.first?.decode(Bool.self, column: 0)) == true else { return [] }
        let result = try await query(
            connection,
            "SELECT id, checksum, message, applied_at::text, duration_ms, applied_by, runner_version, finished FROM schema_migrations")
        var rows: [AppliedRevision] = []
        for row in result.rows {
            do {
                rows.append(
                    AppliedRevision(
                        id: try row.decode(String.self, column: 0), checksum: try row.decode(String.self, column: 1),
                        message: try row.decode(String.self, column: 2), appliedAt: try row.decode(String.self, column: 3),
                        durationMilliseconds: try row.decode(Int32?.self, column: 4).map(Int.init), appliedBy: try row.decode(String.self, column: 5),
                        runnerVersion: try row.decode(String.self, column: 6), finished: try row.decode(Bool.self, column: 7)))
            } catch {
                throw MigrationError(.historyMismatch, "schema_migrations has a row this runner cannot read: \(error)")
            }
        }
        // Oldest first, in the line's order (unknown ones last, for the error they cause).
        return rows.sorted { (graph.position(of: $0.id) ?? .max) < (graph.position(of: $1.id) ?? .max) }
    }

    /// Refuses edited files (unless allowed, then records their new checksum) and unfinished
    /// non-transactional migrations.
    private func verify(_ rows: [AppliedRevision]) throws(MigrationError) {
        for row in rows {
            guard let position = graph.position(of: row.id) else { continue }  // the planner names it
            let migration = graph.ordered[position]
            if !row.finished {
                throw MigrationError(
                    .historyMismatch,
                    """
                    \(migration.id) (\(migration.fileName)) is non-transactional and started at \(row.appliedAt) without finishing. \
                    Inspect what it left (an index it built CONCURRENTLY may be INVALID: drop it), then run `migrate stamp \(migration.id)` \
                    if its work is complete, or `migrate stamp \(migration.parent ?? "base")` to have it run again.
                    """)
            }
            if migration.checksum != row.checksum, !options.allowEdited.contains(migration.id) {
                throw MigrationError(
                    .historyMismatch,
                    """
                    \(migration.fileName) was edited after it was applied (checksum \(row.checksum.prefix(12))… recorded, \
                    \(migration.checksum.prefix(12))… now). Revert the edit and add a new revision, or pass --allow-edited \(migration.id) \
                    if the change is deliberate and already in the database.
                    """)
            }
        }
    }

    /// Runs one section of a migration with its history change: in one transaction, or — for a
    /// non-transactional migration — statement by statement between a "started" and a
    /// "finished" mark in the history.
    private func step(_ migration: Migration, _ direction: MigrationDirection, on connection: PostgresConnection) async throws(MigrationError) {
        let start = ContinuousClock.now
        let (sql, line) = direction == .up ? (migration.up, migration.upLine) : (migration.down, migration.downLine)
        logger.info("\(direction == .up ? "applying" : "undoing") \(migration.id): \(migration.message)", metadata: ["file": "\(migration.fileName)"])
        if migration.isTransactional {
            try await run(connection, "BEGIN")
            do throws(MigrationError) {
                try await setLimits(connection, local: true)
                try await runMigrationSQL(sql, of: migration, section: line, on: connection)
                if direction == .up {
                    try await record(migration, durationMilliseconds: milliseconds(since: start), finished: true, on: connection)
                } else {
                    _ = try await query(connection, "DELETE FROM schema_migrations WHERE id = \(migration.id)")
                }
                try await run(connection, "COMMIT")
            } catch {
                try? await run(connection, "ROLLBACK")
                throw error
            }
            return
        }
        if direction == .up {
            try await record(migration, durationMilliseconds: nil, finished: false, on: connection)
        } else {
            _ = try await query(connection, "UPDATE schema_migrations SET finished = false WHERE id = \(migration.id)")
        }
        try await setLimits(connection, local: false)
        for statement in SQLStatements.split(sql) {
            try await runMigrationSQL(statement.text, of: migration, section: line, offset: statement.offset, in: sql, on: connection)
        }
        try await run(connection, "RESET lock_timeout; RESET statement_timeout")
        if direction == .up {
            _ = try await query(
                connection,
                "UPDATE schema_migrations SET finished = true, duration_ms = \(Int32(clamping: milliseconds(since: start))) WHERE id = \(migration.id)")
        } else {
            _ = try await query(connection, "DELETE FROM schema_migrations WHERE id = \(migration.id)")
        }
    }

    /// Records the new checksum of applied revisions allowed to have been edited.
    private func updateAllowedChecksums(on connection: PostgresConnection) async {
        for id in options.allowEdited.sorted() {
            guard let position = graph.position(of: id) else { continue }
            let checksum = graph.ordered[position].checksum
            _ = try? await query(connection, "UPDATE schema_migrations SET checksum = \(checksum) WHERE id = \(id)")
        }
    }

    private func setLimits(_ connection: PostgresConnection, local: Bool) async throws(MigrationError) {
        let scope = local ? "SET LOCAL" : "SET"
        try await run(
            connection,
            "\(scope) lock_timeout = \(Self.milliseconds(options.lockTimeout)); \(scope) statement_timeout = \(Self.milliseconds(options.statementTimeout))")
    }

    private func record(_ migration: Migration, durationMilliseconds: Int?, finished: Bool, on connection: PostgresConnection) async throws(MigrationError) {
        _ = try await query(
            connection,
            """
            INSERT INTO schema_migrations (id, checksum, message, duration_ms, applied_by, runner_version, finished)
            VALUES (\(migration.id), \(migration.checksum), \(migration.message), \(durationMilliseconds.map { Int32(clamping: $0) }), \
            \(options.appliedBy), \(Self.version), \(finished))
            """)
    }

    /// Runs a migration's SQL; a refusal becomes an error naming the file, the line and column
    /// of the server's error position, the message and the SQLSTATE.
    private func runMigrationSQL(
        _ sql: String, of migration: Migration, section line: Int, offset: Int = 0, in whole: String? = nil, on connection: PostgresConnection
    ) async throws(MigrationError) {
        do {
            _ = try await connection.simpleQuery(sql)
        } catch {
            var location = "\(migration.fileName):\(line)"
            // The server's position counts characters from 1 in the text it was sent.
            if let position = error.diagnostics?.position {
                let prefix = String(decoding: Array((whole ?? sql).utf8).prefix(offset), as: UTF8.self)
                let before = prefix + String(String.UnicodeScalarView(sql.unicodeScalars.prefix(max(0, position - 1))))
                let lines = before.split(separator: "\n", omittingEmptySubsequences: false)
                location = "\(migration.fileName):\(line + lines.count - 1):\(lines.last.map { $0.unicodeScalars.count + 1 } ?? 1)"
            }
            let state = error.diagnostics?.sqlState.rawValue
            let detail = error.diagnostics?.fields[.detail].map { " (\($0))" } ?? ""
            throw MigrationError(
                .statementFailed, "\(location): \(error.diagnostics?.message ?? error.message)\(detail) [SQLSTATE \(state ?? "none")]", sqlState: state)
        }
    }

    private func run(_ connection: PostgresConnection, _ sql: String) async throws(MigrationError) {
        do {
            _ = try await connection.simpleQuery(sql)
        } catch {
            throw MigrationError(error.kind == .connection ? .connection : .statementFailed, "\(sql.prefix(80)): \(error)", sqlState: error.sqlState?.rawValue)
        }
    }

    private func query(_ connection: PostgresConnection, _ query: PostgresQuery) async throws(MigrationError) -> PostgresQueryResult {
        do {
            return try await connection.execute(query)
        } catch {
            throw MigrationError(error.kind == .connection ? .connection : .statementFailed, "\(error)", sqlState: error.sqlState?.rawValue)
        }
    }

    private func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Self.milliseconds(start.duration(to: .now))
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
