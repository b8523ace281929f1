import Foundation
import Transport

/// A failure of the migration runner: what went wrong and where (file, line), with the server's
/// message and SQLSTATE when the server refused a statement.
public struct MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A migration file is malformed (header, sections).
        case invalidFile
        /// The files do not form one line of revisions (several heads, a missing parent, a cycle,
        /// a duplicate id).
        case invalidGraph
        /// The database's history does not match the files (an unknown revision, an edited file,
        /// an unfinished non-transactional migration).
        case historyMismatch
        /// The target is not a revision, or not reachable in that direction.
        case invalidTarget
        /// The server refused a statement of a migration.
        case statementFailed
        /// Another runner holds the migration lock past the deadline.
        case lockTimeout
        /// The connection failed.
        case connection
    }

    public var kind: Kind
    public var message: String
    /// The SQLSTATE of a refused statement.
    public var sqlState: String?

    public init(_ kind: Kind, _ message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { message }
}

/// One revision: a file `<id>_<slug>.sql` under `migrations/` with a header of `-- key: value`
/// lines (revision, down_revision, message, transactional), then an `-- up` and a `-- down`
/// section of plain SQL.
///
/// ```sql
/// -- revision: 3f2a9c1b7d4e
/// -- down_revision: 0a1b2c3d4e5f
/// -- message: index jobs by status
/// -- transactional: false
/// -- up
/// CREATE INDEX CONCURRENTLY processing_jobs_runnable ON processing_jobs (run_after) WHERE status = 'queued';
/// -- down
/// DROP INDEX CONCURRENTLY processing_jobs_runnable;
/// ```
public struct Migration: Sendable, Equatable {
    /// The revision id (12 lowercase hexadecimal digits, as Alembic makes them).
    public var id: String
    /// The revision it builds on; nil for the first.
    public var parent: String?
    public var message: String
    /// False for statements that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`): they
    /// run one by one, recorded as started and then finished.
    public var isTransactional: Bool
    public var up: String
    public var down: String
    /// The file's name (for messages) and the lines its sections start on (1-based).
    public var fileName: String
    public var upLine: Int
    public var downLine: Int

    /// SHA-256 of the up section with line endings normalised to LF, in hex: a file edited after
    /// it was applied no longer matches its history row.
    public var checksum: String {
        let normalized = up.replacingOccurrences(of: "\r\n", with: "\n")
        return Crypto.hex(Crypto.sha256(Array(normalized.utf8)))
    }

    /// Whether `id` has the form of a revision id.
    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 12 && id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Parses a migration file's text.
    public init(fileName: String, text: String) throws(MigrationError) {
        func fail(_ line: Int, _ problem: String) -> MigrationError {
            MigrationError(.invalidFile, "\(fileName):\(line): \(problem)")
        }
        // "\r\n" is one Character: lines end at either.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        var header: [String: (value: String, line: Int)] = [:]
        var index = 0
        // The header: `-- key: value` lines (blank lines allowed) up to `-- up`.
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                index += 1
                continue
            }
            if Self.isMarker(line, "up") { break }
            if Self.isMarker(line, "down") { throw fail(index + 1, "no `-- up` section before `-- down`") }
            guard line.hasPrefix("--"), let colon = line.firstIndex(of: ":") else {
                throw fail(index + 1, "expected a header line `-- key: value` or `-- up`, found \"\(line.prefix(60))\"")
            }
            let key = line[line.index(line.startIndex, offsetBy: 2)..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard header[key] == nil else { throw fail(index + 1, "the header names \(key) twice") }
            header[key] = (value, index + 1)
            index += 1
        }
        guard index < lines.count else { throw fail(lines.count, "no `-- up` section") }
        let upStart = index + 1
        var downMarker: Int?
        for position in upStart..<lines.count where Self.isMarker(lines[position].trimmingCharacters(in: .whitespaces), "down") {
            guard downMarker == nil else { throw fail(position + 1, "a second `-- down` section") }
            downMarker = position
        }
        for position in upStart..<lines.count where Self.isMarker(lines[position].trimmingCharacters(in: .whitespaces), "up") {
            throw fail(position + 1, "a second `-- up` section")
        }
        guard let downMarker else { throw fail(lines.count, "no `-- down` section (write one, even if it only raises an error)") }

        guard let revision = header["revision"] else { throw fail(1, "the header has no `-- revision:`") }
        guard Self.isValidID(revision.value) else {
            throw fail(revision.line, "revision \"\(revision.value)\" is not 12 lowercase hexadecimal digits")
        }
        let parentValue = header["down_revision"]?.value ?? "none"
        let parent = ["none", "", "null"].contains(parentValue.lowercased()) ? nil : parentValue
        if let parent, !Self.isValidID(parent) {
            throw fail(header["down_revision"]?.line ?? 1, "down_revision \"\(parent)\" is not a revision id (or `none`)")
        }
        var transactional = true
        if let value = header["transactional"] {
            switch value.value.lowercased() {
            case "true", "yes": transactional = true
            case "false", "no": transactional = false
            default: throw fail(value.line, "transactional must be true or false, not \"\(value.value)\"")
            }
        }
        for key in header.keys where !["revision", "down_revision", "message", "transactional", "created"].contains(key) {
            throw fail(header[key]?.line ?? 1, "unknown header key \"\(key)\"")
        }
        let expectedPrefix = revision.value + "_"
        guard fileName.hasPrefix(expectedPrefix) || fileName == revision.value + ".sql" else {
            throw fail(revision.line, "the file name must start with its revision id \(revision.value)")
        }
        self.id = revision.value
        self.parent = parent
        self.message = header["message"]?.value ?? ""
        self.isTransactional = transactional
        self.up = lines[upStart..<downMarker].joined(separator: "\n")
        self.down = lines[(downMarker + 1)...].joined(separator: "\n")
        self.fileName = fileName
        self.upLine = upStart + 1
        self.downLine = downMarker + 2
    }

    private static func isMarker(_ line: String, _ name: String) -> Bool {
        guard line.hasPrefix("--") else { return false }
        return line.dropFirst(2).trimmingCharacters(in: .whitespaces).lowercased() == name
    }

    /// The migrations of a directory (`*.sql`), parsed.
    public static func load(directory: String) throws(MigrationError) -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        } catch {
            throw MigrationError(.invalidFile, "cannot read the migrations directory \(directory): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw MigrationError(.invalidFile, "cannot read \(path)")
            }
            guard let text = String(data: data, encoding: .utf8) else { throw MigrationError(.invalidFile, "\(name) is not UTF-8") }
            migrations.append(try Migration(fileName: name, text: text))
        }
        return migrations
    }
}

/// SQL text cut into statements at top-level semicolons: quotes, quoted identifiers, dollar
/// quotes and comments are respected. Used to run a non-transactional migration one statement at
/// a time (a multi-statement query is one implicit transaction, which `CONCURRENTLY` refuses).
public enum SQLStatements {
    /// Each statement with the offset (in UTF-8 bytes) where it starts; empty ones are dropped.
    public static func split(_ sql: String) -> [(text: String, offset: Int)] {
        let bytes = Array(sql.utf8)
        var statements: [(String, Int)] = []
        var start = 0
        var index = 0
        func emit(_ end: Int) {
            let piece = String(decoding: bytes[start..<end], as: UTF8.self)
            if !piece.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, !isOnlyComments(piece) { statements.append((piece, start)) }
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                index += 1
                while index < bytes.count {
                    if bytes[index] == byte {
                        if index + 1 < bytes.count, bytes[index + 1] == byte { index += 2; continue }  // doubled quote
                        break
                    }
                    index += 1
                }
                index += 1
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                var depth = 1
                index += 2
                while index < bytes.count, depth > 0 {
                    if bytes[index] == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                        depth += 1
                        index += 2
                    } else if bytes[index] == UInt8(ascii: "*"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        index += 2
                    } else {
                        index += 1
                    }
                }
            case UInt8(ascii: "$"):
                // A dollar quote: $tag$ … $tag$ (the tag is letters, digits, underscores).
                var end = index + 1
                while end < bytes.count, bytes[end] == UInt8(ascii: "_") || (bytes[end] | 0x20 >= 0x61 && bytes[end] | 0x20 <= 0x7A)
                    || (bytes[end] >= 0x30 && bytes[end] <= 0x39 && end > index + 1)
                {
                    end += 1
                }
                guard end < bytes.count, bytes[end] == UInt8(ascii: "$") else {
                    index += 1
                    continue
                }
                let tag = Array(bytes[index...end])
                index = end + 1
                while index < bytes.count {
                    if bytes[index] == UInt8(ascii: "$"), index + tag.count <= bytes.count, Array(bytes[index..<(index + tag.count)]) == tag {
                        index += tag.count
                        break
                    }
                    index += 1
                }
            case UInt8(ascii: ";"):
                emit(index + 1)
                index += 1
                start = index
            default:
                index += 1
            }
        }
        if start < bytes.count { emit(bytes.count) }
        return statements
    }

    private static func isOnlyComments(_ piece: String) -> Bool {
        piece.split(separator: "\n").allSatisfy { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty || trimmed.hasPrefix("--") || trimmed == ";"
        }
    }
}
