import Foundation
import Transport

/// A conversation captured from a real server, as kept in `Fixtures/<protocol>/`: comment lines
/// start with `#`; `> ` lines went from the client to the server and `< ` lines came back. A line
/// holds hex bytes (spaced or not) and may end in `# note`; a client line that is not hex (the
/// Redis fixtures write their commands as text) keeps its text. The one reader of these files,
/// for the tests and for the fuzzers' seed corpora (`fixture-corpus`).
public struct GoldenStream: Sendable {
    /// One line of the conversation.
    public struct Line: Sendable {
        /// True for `<` (server to client).
        public let fromServer: Bool
        /// The decoded bytes; empty for a text line.
        public let bytes: [UInt8]
        /// The line after its direction marker when it is not hex (a command written as text).
        public let text: String?
        /// The note after `#`, trimmed.
        public let note: String
    }

    /// What is wrong with a fixture file, and where.
    public struct Malformed: Error, CustomStringConvertible {
        public let file: String
        public let line: Int
        public let reason: String
        public var description: String { "\(file):\(line): \(reason)" }
    }

    /// The file name, with its extension.
    public let name: String
    /// The lines in order.
    public let lines: [Line]

    /// Every byte the server sent, in order.
    public var serverBytes: [UInt8] { lines.filter(\.fromServer).flatMap(\.bytes) }

    /// The project's `Fixtures/` folder, found from this source file's place in the tree.
    public static let fixturesDirectory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.lastPathComponent != "Tests" && url.pathComponents.count > 1 { url.deleteLastPathComponent() }
        return url.deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    /// Reads one fixture file.
    public static func load(_ url: URL) throws -> GoldenStream {
        let text = try String(contentsOf: url, encoding: .utf8)
        var lines: [Line] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let marker = raw.first, marker == "<" || marker == ">" else { continue }
            let parts = raw.dropFirst().split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let body = parts[0].trimmingCharacters(in: .whitespaces)
            let note = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
            if let bytes = hexBytes(body) {
                lines.append(Line(fromServer: marker == "<", bytes: bytes, text: nil, note: note))
            } else if marker == ">" {
                lines.append(Line(fromServer: false, bytes: [], text: String(raw.dropFirst(2)), note: ""))
            } else {
                throw Malformed(file: url.lastPathComponent, line: number + 1, reason: "a server line that is not hex bytes")
            }
        }
        return GoldenStream(name: url.lastPathComponent, lines: lines)
    }

    /// Every fixture with the extension `fileExtension` in `Fixtures/<folder>`, sorted by name.
    public static func all(in folder: String, fileExtension: String) throws -> [GoldenStream] {
        let directory = fixturesDirectory.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix("." + fileExtension) }.sorted()
            .map { try load(directory.appendingPathComponent($0)) }
    }

    /// One fixture of `Fixtures/<folder>` by file name.
    public static func named(_ file: String, in folder: String) throws -> GoldenStream {
        try load(fixturesDirectory.appendingPathComponent(folder).appendingPathComponent(file))
    }

    /// The bytes of a hex string (spaces between bytes allowed), or nil if it is not one.
    static func hexBytes(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var high: UInt8?
        for character in text.utf8 {
            if character == UInt8(ascii: " ") {
                guard high == nil else { return nil }
                continue
            }
            guard let nibble = ASCIIHex.value(character) else { return nil }
            if let pending = high {
                bytes.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil && !bytes.isEmpty ? bytes : nil
    }
}
