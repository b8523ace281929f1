/// Dynaconf's `@token value` converters, as far as they can be evaluated while loading.
enum Converter {
    /// Every token Dynaconf knows. A string whose first word is not one of them is not converted.
    static let dynaconfTokens: Set<String> = [
        "@str", "@int", "@float", "@bool", "@json", "@format", "@jinja", "@reset", "@del", "@merge", "@merge_unique",
        "@insert", "@get", "@read_file", "@upper", "@lower", "@title", "@capitalize", "@strip", "@lstrip", "@rstrip",
        "@split", "@casefold", "@swapcase", "@note", "@comment", "@null", "@none", "@empty",
    ]

    static let trueValues: Set<String> = ["t", "true", "enabled", "1", "on", "yes"]

    /// nil when `text` does not start with a Dynaconf token.
    static func apply(_ text: String, origin: String) throws(SettingsError) -> ParsedValue? {
        guard text.hasPrefix("@") else { return nil }
        let token: String
        let rest: String
        if let space = text.firstIndex(of: " ") {
            token = String(text[..<space])
            rest = String(text[text.index(after: space)...])
        } else {
            token = text
            rest = ""
        }
        guard dynaconfTokens.contains(token) else { return nil }
        // A converter applied to a lazy value: `@int @format {this.PORT}`.
        if token != "@format" && token != "@get", rest.hasPrefix("@format ") || rest.hasPrefix("@get ") || rest == "@format" || rest == "@get" {
            guard case .value(.unresolved(var lazy))? = try apply(rest, origin: origin) else { return nil }
            lazy.castToken = token
            return .value(.unresolved(lazy))
        }
        switch token {
        case "@format":
            return .value(.unresolved(LazySetting(kind: .format(rest), castToken: nil, origin: origin)))
        case "@get":
            return .value(.unresolved(try getReference(rest, origin: origin)))
        case "@str":
            return .value(.string(rest))
        case "@int":
            guard let value = pythonInt(rest) else {
                throw SettingsError(message: "\(origin): @int cannot convert '\(rest)' to an integer")
            }
            return .value(.integer(value))
        case "@float":
            guard let value = pythonFloat(rest) else {
                throw SettingsError(message: "\(origin): @float cannot convert '\(rest)' to a float")
            }
            return .value(.float(value))
        case "@bool":
            return .value(.boolean(trueValues.contains(rest.trimmingSpaces().lowercased())))
        case "@json":
            do {
                return .value(try JSONValueParser.parse(rest))
            } catch {
                throw SettingsError(message: "\(origin): @json cannot parse '\(rest)': \(error.message)")
            }
        case "@none", "@null", "@note", "@comment":
            return .value(.null)
        case "@del":
            return .delete
        case "@merge":
            return .merge(try mergeOperand(rest, origin: origin))
        case "@upper":
            return .value(.string(rest.uppercased()))
        case "@lower":
            return .value(.string(rest.lowercased()))
        case "@strip":
            return .value(.string(rest.trimmingSpaces()))
        default:
            throw SettingsError(message: "\(origin): the \(token) converter is not supported by the Swift settings loader")
        }
    }

    /// `@get KEY [@cast] [default | "quoted default"]`.
    static func getReference(_ text: String, origin: String) throws(SettingsError) -> LazySetting {
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { throw SettingsError(message: "\(origin): @get needs a key") }
        let key = words.removeFirst()
        var cast: String?
        var fallback: String?
        var remainder = words.joined(separator: " ")
        while !remainder.isEmpty {
            if let quote = remainder.first, quote == "\"" || quote == "'" {
                let body = remainder.dropFirst()
                guard let end = body.firstIndex(of: quote) else {
                    throw SettingsError(message: "\(origin): unterminated quoted default in @get")
                }
                fallback = String(body[..<end])
                remainder = String(body[body.index(after: end)...]).trimmingSpaces()
            } else {
                let parts = remainder.split(separator: " ", maxSplits: 1).map(String.init)
                if parts[0].hasPrefix("@") { cast = parts[0] } else { fallback = parts[0] }
                remainder = parts.count > 1 ? parts[1].trimmingSpaces() : ""
            }
        }
        return LazySetting(kind: .get(key: key, castToken: cast, defaultValue: fallback), castToken: nil, origin: origin)
    }

    /// What `@merge` merges: a TOML-typed value; scalars and comma lists become lists.
    static func mergeOperand(_ rest: String, origin: String) throws(SettingsError) -> SettingValue {
        let value = SettingsLoader.tomlfy(rest)
        switch value {
        case .integer, .float, .boolean:
            return .array([value])
        case .string(let text):
            if text.contains("=") || text.contains("{") {
                throw SettingsError(message: "\(origin): @merge with key=value or JSON text is not supported by the Swift settings loader; use a TOML inline table")
            }
            if text.contains(",") { return .array(text.split(separator: ",", omittingEmptySubsequences: false).map { SettingsLoader.tomlfy(String($0)) }) }
            return .array([value])
        default:
            return value
        }
    }

    /// Python's `int(text)`: surrounding whitespace, a sign, decimal digits with single underscores.
    static func pythonInt(_ text: String) -> Int64? {
        var body = Substring(text.trimmingSpaces())
        var negative = false
        if let first = body.first, first == "+" || first == "-" {
            negative = first == "-"
            body = body.dropFirst()
        }
        guard let first = body.first, let last = body.last, first != "_", last != "_", !body.contains("__") else { return nil }
        let digits = body.filter { $0 != "_" }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let magnitude = Int64(digits) else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// Python's `float(text)` for the forms settings use: decimals, exponents, inf and nan.
    static func pythonFloat(_ text: String) -> Double? {
        let trimmed = text.trimmingSpaces()
        let lowered = trimmed.lowercased()
        let sign: Double = lowered.hasPrefix("-") ? -1 : 1
        let unsigned = lowered.hasPrefix("-") || lowered.hasPrefix("+") ? String(lowered.dropFirst()) : lowered
        if unsigned == "inf" || unsigned == "infinity" { return sign * .infinity }
        if unsigned == "nan" { return .nan }
        guard !trimmed.isEmpty, !trimmed.hasPrefix("_"), !trimmed.hasSuffix("_"), !trimmed.contains("__"),
            trimmed.allSatisfy({ "0123456789+-.eE_".contains($0) })
        else { return nil }
        return Double(trimmed.filter { $0 != "_" })
    }
}

/// A small JSON parser producing settings values (integers stay integers, as in Python's json).
struct JSONValueParser {
    struct Failure: Error {
        let message: String
    }

    let scalars: [Unicode.Scalar]
    var position = 0

    static func parse(_ text: String) throws(Failure) -> SettingValue {
        var parser = JSONValueParser(scalars: Array(text.unicodeScalars))
        parser.skipSpace()
        let value = try parser.parseValue(depth: 0)
        parser.skipSpace()
        guard parser.position == parser.scalars.count else { throw Failure(message: "extra data after the value") }
        return value
    }

    mutating func skipSpace() {
        while position < scalars.count, [" ", "\t", "\n", "\r"].contains(scalars[position]) { position += 1 }
    }

    mutating func expect(_ word: String) throws(Failure) {
        for scalar in word.unicodeScalars {
            guard position < scalars.count, scalars[position] == scalar else { throw Failure(message: "expected \(word)") }
            position += 1
        }
    }

    mutating func parseValue(depth: Int) throws(Failure) -> SettingValue {
        guard depth < 128 else { throw Failure(message: "nested too deeply") }
        guard position < scalars.count else { throw Failure(message: "expected a value") }
        switch scalars[position] {
        case "{":
            position += 1
            var table = SettingsTable()
            skipSpace()
            if position < scalars.count, scalars[position] == "}" {
                position += 1
                return .table(table)
            }
            while true {
                skipSpace()
                guard position < scalars.count, scalars[position] == "\"" else { throw Failure(message: "expected a string key") }
                let key = try parseString()
                skipSpace()
                try expect(":")
                skipSpace()
                table[key] = try parseValue(depth: depth + 1)
                skipSpace()
                guard position < scalars.count else { throw Failure(message: "unterminated object") }
                if scalars[position] == "}" {
                    position += 1
                    return .table(table)
                }
                try expect(",")
            }
        case "[":
            position += 1
            var elements: [SettingValue] = []
            skipSpace()
            if position < scalars.count, scalars[position] == "]" {
                position += 1
                return .array(elements)
            }
            while true {
                skipSpace()
                elements.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard position < scalars.count else { throw Failure(message: "unterminated array") }
                if scalars[position] == "]" {
                    position += 1
                    return .array(elements)
                }
                try expect(",")
            }
        case "\"":
            return .string(try parseString())
        case "t":
            try expect("true")
            return .boolean(true)
        case "f":
            try expect("false")
            return .boolean(false)
        case "n":
            try expect("null")
            return .null
        default:
            return try parseNumber()
        }
    }

    mutating func parseString() throws(Failure) -> String {
        position += 1
        var output = String.UnicodeScalarView()
        while position < scalars.count {
            let scalar = scalars[position]
            position += 1
            if scalar == "\"" { return String(output) }
            if scalar == "\\" {
                guard position < scalars.count else { break }
                let escape = scalars[position]
                position += 1
                switch escape {
                case "\"", "\\", "/": output.append(escape)
                case "b": output.append("\u{08}")
                case "f": output.append("\u{0C}")
                case "n": output.append("\n")
                case "r": output.append("\r")
                case "t": output.append("\t")
                case "u":
                    guard position + 4 <= scalars.count, let code = UInt32(String(String.UnicodeScalarView(scalars[position..<position + 4])), radix: 16) else {
                        throw Failure(message: "invalid \\u escape")
                    }
                    position += 4
                    output.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default:
                    throw Failure(message: "invalid escape")
                }
            } else {
                output.append(scalar)
            }
        }
        throw Failure(message: "unterminated string")
    }

    mutating func parseNumber() throws(Failure) -> SettingValue {
        let start = position
        while position < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[position]) { position += 1 }
        let text = String(String.UnicodeScalarView(scalars[start..<position]))
        guard !text.isEmpty else { throw Failure(message: "expected a value") }
        if text.allSatisfy({ $0.isNumber || $0 == "-" }), let integer = Int64(text) { return .integer(integer) }
        guard let double = Double(text) else { throw Failure(message: "invalid number \(text)") }
        return .float(double)
    }
}
