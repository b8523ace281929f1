/// The revisions as one line from the first to the head, checked: one head, every parent
/// present, no cycle, no duplicate id. A graph with branches is refused, naming the files.
public struct MigrationGraph: Sendable {
    /// The revisions in order, first to head.
    public let ordered: [Migration]
    private let positions: [String: Int]

    public init(_ migrations: [Migration]) throws(MigrationError) {
        var byID: [String: Migration] = [:]
        for migration in migrations {
            if let other = byID[migration.id] {
                throw MigrationError(.invalidGraph, "revision \(migration.id) is defined twice: \(other.fileName) and \(migration.fileName)")
            }
            byID[migration.id] = migration
        }
        for migration in migrations {
            if let parent = migration.parent, byID[parent] == nil {
                throw MigrationError(.invalidGraph, "\(migration.fileName) builds on revision \(parent), which no file defines")
            }
        }
        var children: [String: [Migration]] = [:]
        var roots: [Migration] = []
        for migration in migrations {
            if let parent = migration.parent { children[parent, default: []].append(migration) } else { roots.append(migration) }
        }
        for (parent, kids) in children where kids.count > 1 {
            let files = kids.map(\.fileName).sorted().joined(separator: ", ")
            throw MigrationError(
                .invalidGraph, "revision \(parent) has \(kids.count) children (\(files)): the history must be one line; rebase one onto the other")
        }
        let heads = migrations.filter { children[$0.id] == nil }
        if migrations.isEmpty {
            ordered = []
            positions = [:]
            return
        }
        guard roots.count == 1 else {
            if roots.isEmpty {
                throw MigrationError(.invalidGraph, "every revision has a parent: the revisions form a cycle (\(migrations.map(\.fileName).sorted().joined(separator: ", ")))")
            }
            throw MigrationError(.invalidGraph, "several first revisions (no down_revision): \(roots.map(\.fileName).sorted().joined(separator: ", "))")
        }
        guard heads.count == 1 else {
            throw MigrationError(.invalidGraph, "several heads: \(heads.map(\.fileName).sorted().joined(separator: ", "))")
        }
        var line: [Migration] = []
        var current: Migration? = roots[0]
        while let migration = current {
            line.append(migration)
            current = children[migration.id]?.first
        }
        guard line.count == migrations.count else {
            let reached = Set(line.map(\.id))
            let loose = migrations.filter { !reached.contains($0.id) }.map(\.fileName).sorted()
            throw MigrationError(.invalidGraph, "revisions in a cycle, unreachable from the first: \(loose.joined(separator: ", "))")
        }
        ordered = line
        positions = Dictionary(uniqueKeysWithValues: line.enumerated().map { ($0.element.id, $0.offset) })
    }

    public var head: Migration? { ordered.last }

    /// The position of a revision in the line.
    public func position(of id: String) -> Int? { positions[id] }

    /// A revision by id, or by a unique prefix of it (as Alembic accepts).
    public func resolve(_ reference: String) throws(MigrationError) -> Migration {
        if let position = positions[reference] { return ordered[position] }
        let matches = ordered.filter { $0.id.hasPrefix(reference.lowercased()) }
        guard matches.count == 1 else {
            throw MigrationError(
                .invalidTarget, matches.isEmpty ? "no revision \(reference)" : "\(reference) names several revisions: \(matches.map(\.id).joined(separator: ", "))")
        }
        return matches[0]
    }
}

/// Which way a step goes.
public enum MigrationDirection: String, Sendable {
    case up, down
}

/// What `upgrade` aims at.
public enum UpgradeTarget: Sendable, Equatable {
    case head
    /// `+N`: N revisions further.
    case relative(Int)
    case revision(String)

    /// `head`, `+N` or a revision id (or prefix).
    public init(parsing text: String) throws(MigrationError) {
        if text == "head" || text == "heads" {
            self = .head
        } else if text.hasPrefix("+"), let count = Int(text.dropFirst()), count > 0 {
            self = .relative(count)
        } else if !text.isEmpty {
            self = .revision(text)
        } else {
            throw MigrationError(.invalidTarget, "an upgrade target is head, +N or a revision")
        }
    }
}

/// What `downgrade` aims at.
public enum DowngradeTarget: Sendable, Equatable {
    /// `-N`: N revisions back.
    case relative(Int)
    case revision(String)
    /// Before the first revision: an empty schema.
    case base

    /// `base`, `-N` or a revision id (or prefix).
    public init(parsing text: String) throws(MigrationError) {
        if text == "base" {
            self = .base
        } else if text.hasPrefix("-"), let count = Int(text.dropFirst()), count > 0 {
            self = .relative(count)
        } else if !text.isEmpty {
            self = .revision(text)
        } else {
            throw MigrationError(.invalidTarget, "a downgrade target is base, -N or a revision")
        }
    }
}

/// The pure part of the runner: from the graph and the applied revisions, the steps to take.
public enum MigrationPlanner {
    /// How many revisions of the line are applied: the history must be a prefix of the line.
    public static func appliedCount(_ graph: MigrationGraph, applied: [String]) throws(MigrationError) -> Int {
        let known = Set(applied)
        for id in applied where graph.position(of: id) == nil {
            throw MigrationError(.historyMismatch, "the database has revision \(id) applied, which no file in migrations/ defines")
        }
        let count = known.count
        for (position, migration) in graph.ordered.enumerated() {
            let isApplied = known.contains(migration.id)
            if position < count, !isApplied {
                throw MigrationError(
                    .historyMismatch,
                    "the database has later revisions applied but not \(migration.id) (\(migration.fileName)); stamp or apply it by hand")
            }
        }
        return count
    }

    /// The revisions `upgrade` applies, in order.
    public static func upgrade(_ graph: MigrationGraph, applied: [String], to target: UpgradeTarget) throws(MigrationError) -> [Migration] {
        let count = try appliedCount(graph, applied: applied)
        let end: Int
        switch target {
        case .head:
            end = graph.ordered.count
        case .relative(let steps):
            end = count + steps
            guard end <= graph.ordered.count else {
                throw MigrationError(.invalidTarget, "+\(steps) goes past the head: only \(graph.ordered.count - count) revisions are left to apply")
            }
        case .revision(let reference):
            let migration = try graph.resolve(reference)
            end = (graph.position(of: migration.id) ?? 0) + 1
            guard end >= count else {
                throw MigrationError(.invalidTarget, "\(migration.id) is already applied and behind the current revision; use downgrade")
            }
        }
        return Array(graph.ordered[count..<end])
    }

    /// The revisions `downgrade` undoes, newest first.
    public static func downgrade(_ graph: MigrationGraph, applied: [String], to target: DowngradeTarget) throws(MigrationError) -> [Migration] {
        let count = try appliedCount(graph, applied: applied)
        let keep: Int
        switch target {
        case .base:
            keep = 0
        case .relative(let steps):
            keep = count - steps
            guard keep >= 0 else { throw MigrationError(.invalidTarget, "-\(steps) goes past the base: only \(count) revisions are applied") }
        case .revision(let reference):
            let migration = try graph.resolve(reference)
            keep = (graph.position(of: migration.id) ?? 0) + 1
            guard keep <= count else { throw MigrationError(.invalidTarget, "\(migration.id) is not applied; use upgrade") }
        }
        return Array(graph.ordered[keep..<count].reversed())
    }
}
