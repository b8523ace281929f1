/// A `.env` file read the way python-dotenv (the copy Dynaconf bundles) reads it, so the Swift
/// services and the Python workers see the same variables.
///
/// Lines are `[export ]KEY=VALUE`; keys are unquoted (no `=`, `#` or whitespace) or single-quoted.
/// Values are single-quoted (`\\` and `\'` escapes), double-quoted (`\\ \' \" \a \b \f \n \r \t \v`
/// escapes; both quote kinds may span lines) or unquoted (inner single spaces kept, ended by two
/// spaces, ` #`, or the end of the line). A line that does not parse is skipped, as python-dotenv
/// skips it with a warning; ``skippedLines`` lists them. `${NAME}` and `${NAME:-default}` expand
/// from the real environment first, then from lines earlier in the file; `$NAME` is left alone.
public struct DotEnv: Sendable, Equatable {
    /// One `KEY=VALUE` line as written (before expansion). A key without `=` has a nil value.
    public struct Binding: Sendable, Equatable {
        /// The variable name.
        public var key: String
        /// The raw value, or nil for a bare key.
        public var value: String?
        /// Line where the binding starts (from 1).
        public var line: Int
    }

    /// The bindings in file order.
    public private(set) var bindings: [Binding] = []
    /// Lines (from 1) that could not be parsed and were skipped.
    public private(set) var skippedLines: [Int] = []

    /// Parses the text of a `.env` file. Line breaks are normalized first (`\r\n` and `\r` become
    /// `\n`), as Python's text-mode reading does.
    public init(parsing text: String) {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                scalars.append("\n")
                previousWasCR = true
                continue
            }
            if scalar == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            scalars.append(scalar)
        }
        var reader = DotEnvReader(scalars: scalars)
        while reader.hasMore {
            let line = reader.line
            switch reader.readBinding() {
            case .binding(let key, let value): bindings.append(Binding(key: key, value: value, line: line))
            case .nothing: break
            case .error(let errorLine): skippedLines.append(errorLine)
            }
        }
    }

    /// The variables the file defines, in first-definition order with the last value of each key,
    /// with `${…}` expanded against `environment` and earlier entries. Bare keys are left out.
    public func resolved(environment: [String: String]) -> [(key: String, value: String)] {
        var order: [String] = []
        var raw: [String: String?] = [:]
        for binding in bindings {
            if raw[binding.key] == nil { order.append(binding.key) }
            raw[binding.key] = .some(binding.value)
        }
        var resolved: [String: String] = [:]
        var result: [(key: String, value: String)] = []
        for key in order {
            guard let value = raw[key] ?? nil else { continue }
            let expanded = DotEnv.expand(value, environment: environment, earlier: resolved)
            resolved[key] = expanded
            result.append((key, expanded))
        }
        return result
    }

    /// What loading the file changes: its variables, minus those the real environment already has.
    public func variables(overlaying environment: [String: String]) -> [String: String] {
        var added: [String: String] = [:]
        for (key, value) in resolved(environment: environment) where environment[key] == nil {
            added[key] = value
        }
        return added
    }

    /// Replaces each `${NAME}` / `${NAME:-default}`; names stop at `}` or `:`.
    static func expand(_ value: String, environment: [String: String], earlier: [String: String]) -> String {
        let scalars = Array(value.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            if scalars[index] == "$", index + 1 < scalars.count, scalars[index + 1] == "{",
                let (name, fallback, end) = matchVariable(scalars, from: index + 2)
            {
                let replacement = environment[name] ?? earlier[name] ?? fallback ?? ""
                // One scalar at a time: UnicodeScalarView's append(contentsOf:) copies the whole
                // string each call, which makes a long value quadratic.
                for scalar in replacement.unicodeScalars { output.append(scalar) }
                index = end
            } else {
                output.append(scalars[index])
                index += 1
            }
        }
        return String(output)
    }

    private static func matchVariable(_ scalars: [Unicode.Scalar], from start: Int) -> (String, String?, Int)? {
        var cursor = start
        while cursor < scalars.count, scalars[cursor] != "}", scalars[cursor] != ":" { cursor += 1 }
        let name = String(String.UnicodeScalarView(scalars[start..<cursor]))
        guard cursor < scalars.count else { return nil }
        if scalars[cursor] == "}" { return (name, nil, cursor + 1) }
        // ":-default}"
        guard cursor + 1 < scalars.count, scalars[cursor + 1] == "-" else { return nil }
        var end = cursor + 2
        while end < scalars.count, scalars[end] != "}" { end += 1 }
        guard end < scalars.count else { return nil }
        return (name, String(String.UnicodeScalarView(scalars[(cursor + 2)..<end])), end + 1)
    }
}

/// The scanner behind ``DotEnv``; positions count Unicode scalars, as Python strings do.
private struct DotEnvReader {
    enum Outcome {
        case binding(String, String?)
        case nothing
        case error(Int)
    }

    struct Failure: Error {}

    let scalars: [Unicode.Scalar]
    var position = 0
    var line = 1

    var hasMore: Bool { position < scalars.count }

    func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        position + offset < scalars.count ? scalars[position + offset] : nil
    }

    /// Python's `\s`: Unicode whitespace plus the separators U+001C…U+001F.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
    }

    static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool { scalar == "\n" || scalar == "\r" }

    mutating func advance(to newPosition: Int) {
        for index in position..<newPosition {
            // A line break is \r\n, \n or \r.
            if scalars[index] == "\n" || (scalars[index] == "\r" && (index + 1 >= scalars.count || scalars[index + 1] != "\n")) {
                line += 1
            }
        }
        position = newPosition
    }

    mutating func readBinding() -> Outcome {
        var cursor = position
        while cursor < scalars.count, Self.isSpace(scalars[cursor]) { cursor += 1 }
        advance(to: cursor)
        guard hasMore else { return .nothing }
        let startLine = line
        do {
            skipExport()
            let key = try readKey()
            skipInlineSpace()
            var value: String?
            if peek() == "=" {
                advance(to: position + 1)
                skipInlineSpace()
                value = try readValue()
            }
            skipComment()
            try readEndOfLine()
            guard let key else { return .nothing }
            return .binding(key, value)
        } catch {
            var cursor = position
            while cursor < scalars.count, !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
            if cursor < scalars.count { cursor += 1 }  // \r, \n (a \r\n leaves its \n as leading space)
            advance(to: cursor)
            return .error(startLine)
        }
    }

    mutating func skipInlineSpace() {
        var cursor = position
        while cursor < scalars.count, Self.isSpace(scalars[cursor]), !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
        advance(to: cursor)
    }

    mutating func skipExport() {
        let word: [Unicode.Scalar] = ["e", "x", "p", "o", "r", "t"]
        guard position + 6 < scalars.count, Array(scalars[position..<position + 6]) == word else { return }
        var cursor = position + 6
        guard Self.isSpace(scalars[cursor]), !Self.isLineBreak(scalars[cursor]) else { return }
        while cursor < scalars.count, Self.isSpace(scalars[cursor]), !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
        advance(to: cursor)
    }

    /// nil for a comment line.
    mutating func readKey() throws(Failure) -> String? {
        guard let first = peek() else { throw Failure() }
        if first == "#" { return nil }
        if first == "'" {
            var cursor = position + 1
            while cursor < scalars.count, scalars[cursor] != "'" { cursor += 1 }
            guard cursor < scalars.count, cursor > position + 1 else { throw Failure() }
            let key = String(String.UnicodeScalarView(scalars[(position + 1)..<cursor]))
            advance(to: cursor + 1)
            return key
        }
        var cursor = position
        while cursor < scalars.count, scalars[cursor] != "=", scalars[cursor] != "#", !Self.isSpace(scalars[cursor]) { cursor += 1 }
        guard cursor > position else { throw Failure() }
        let key = String(String.UnicodeScalarView(scalars[position..<cursor]))
        advance(to: cursor)
        return key
    }

    mutating func readValue() throws(Failure) -> String {
        guard let first = peek() else { return "" }
        switch first {
        case "'":
            return Self.unescape(try readQuoted("'"), escapes: ["\\": "\\", "'": "'"])
        case "\"":
            return Self.unescape(
                try readQuoted("\""),
                escapes: ["\\": "\\", "'": "'", "\"": "\"", "a": "\u{07}", "b": "\u{08}", "f": "\u{0C}", "n": "\n", "r": "\r", "t": "\t", "v": "\u{0B}"])
        case "\n", "\r":
            return ""
        default:
            return readUnquoted()
        }
    }

    /// A quoted value: ends at the first quote not preceded by a backslash; if there is none, at
    /// the last backslash-quote pair (the backslash then belongs to the value).
    mutating func readQuoted(_ quote: Unicode.Scalar) throws(Failure) -> [Unicode.Scalar] {
        let start = position + 1
        var cursor = start
        var lastEscapedQuote: Int?
        while cursor < scalars.count {
            if scalars[cursor] == "\\", cursor + 1 < scalars.count, scalars[cursor + 1] == quote {
                lastEscapedQuote = cursor + 1
                cursor += 2
            } else if scalars[cursor] == quote {
                break
            } else {
                cursor += 1
            }
        }
        if cursor >= scalars.count {
            guard let fallback = lastEscapedQuote else { throw Failure() }
            cursor = fallback
        }
        let content = Array(scalars[start..<cursor])
        advance(to: cursor + 1)
        return content
    }

    static func unescape(_ content: [Unicode.Scalar], escapes: [Unicode.Scalar: Unicode.Scalar]) -> String {
        var output = String.UnicodeScalarView()
        var index = 0
        while index < content.count {
            if content[index] == "\\", index + 1 < content.count, let replacement = escapes[content[index + 1]] {
                output.append(replacement)
                index += 2
            } else {
                output.append(content[index])
                index += 1
            }
        }
        return String(output)
    }

    /// Runs of non-space characters joined by single spaces; two spaces, ` #` or a line break end it.
    mutating func readUnquoted() -> String {
        var output = String.UnicodeScalarView()
        while true {
            var cursor = position
            while cursor < scalars.count, scalars[cursor] != " ", !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
            for scalar in scalars[position..<cursor] { output.append(scalar) }  // not append(contentsOf:): see expand
            advance(to: cursor)
            guard let next = peek(), let after = peek(1), !Self.isLineBreak(next),
                after != " ", after != "#", !Self.isLineBreak(after)
            else { return String(output) }
            output.append(next)
            output.append(after)
            advance(to: position + 2)
        }
    }

    mutating func skipComment() {
        var cursor = position
        while cursor < scalars.count, Self.isSpace(scalars[cursor]), !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
        guard cursor < scalars.count, scalars[cursor] == "#" else { return }
        while cursor < scalars.count, !Self.isLineBreak(scalars[cursor]) { cursor += 1 }
        advance(to: cursor)
    }

    mutating func readEndOfLine() throws(Failure) {
        skipInlineSpace()
        guard let next = peek() else { return }
        if next == "\r" && peek(1) == "\n" {
            advance(to: position + 2)
        } else if Self.isLineBreak(next) {
            advance(to: position + 1)
        } else {
            throw Failure()
        }
    }
}
