/// Evaluates `@format` and `@get` values once every layer is merged, as Dynaconf does on access.
struct LazyEvaluator {
    let environment: [String: String]
    var root: SettingsTable
    let maximumDepth = 32

    mutating func resolveAll() throws(SettingsError) -> SettingsTable {
        try resolve(.table(root), depth: 0).table ?? SettingsTable()
    }

    func resolve(_ value: SettingValue, depth: Int) throws(SettingsError) -> SettingValue {
        switch value {
        case .unresolved(let lazy):
            guard depth < maximumDepth else { throw SettingsError(message: "\(lazy.origin): @format/@get references form a cycle") }
            return try resolve(try evaluate(lazy, depth: depth), depth: depth + 1)
        case .table(let table):
            var resolved = SettingsTable()
            for (key, child) in table.entries { resolved[key] = try resolve(child, depth: depth) }
            return .table(resolved)
        case .array(let elements):
            var resolved: [SettingValue] = []
            for element in elements { resolved.append(try resolve(element, depth: depth)) }
            return .array(resolved)
        default:
            return value
        }
    }

    func evaluate(_ lazy: LazySetting, depth: Int) throws(SettingsError) -> SettingValue {
        var result: SettingValue
        switch lazy.kind {
        case .format(let template):
            result = .string(try format(template, lazy: lazy, depth: depth))
        case .get(let key, let castToken, let fallback):
            if let found = lookup(key.split(separator: ".").map(String.init), in: root) {
                result = try resolve(found, depth: depth + 1)
            } else if let fallback {
                result = .string(fallback)
            } else {
                throw SettingsError(message: "\(lazy.origin): @get \(key): no such setting and no default")
            }
            if let castToken { result = try cast(result, castToken, origin: lazy.origin) }
        }
        if let castToken = lazy.castToken { result = try cast(result, castToken, origin: lazy.origin) }
        return result
    }

    func cast(_ value: SettingValue, _ token: String, origin: String) throws(SettingsError) -> SettingValue {
        switch try Converter.apply(token + " " + pythonString(value, origin: origin), origin: origin) {
        case .value(let converted)?: return converted
        default: throw SettingsError(message: "\(origin): \(token) cannot be applied to a lazy value")
        }
    }

    func lookup(_ path: [String], in table: SettingsTable) -> SettingValue? {
        guard let first = path.first, let value = table.value(forKeyIgnoringCase: first) else { return nil }
        if path.count == 1 { return value }
        guard case .table(let child) = value else { return nil }
        return lookup(Array(path.dropFirst()), in: child)
    }

    /// Python's `str.format` with `this`/`settings` (the settings) and `env` (the variables).
    func format(_ template: String, lazy: LazySetting, depth: Int) throws(SettingsError) -> String {
        var output = ""
        var index = template.startIndex
        while index < template.endIndex {
            let character = template[index]
            let next = template.index(after: index)
            if character == "{" {
                if next < template.endIndex && template[next] == "{" {
                    output.append("{")
                    index = template.index(after: next)
                    continue
                }
                guard let close = template[next...].firstIndex(of: "}") else {
                    throw SettingsError(message: "\(lazy.origin): unmatched '{' in @format")
                }
                let field = String(template[next..<close])
                output += try fieldValue(field, lazy: lazy, depth: depth)
                index = template.index(after: close)
            } else if character == "}" {
                guard next < template.endIndex && template[next] == "}" else {
                    throw SettingsError(message: "\(lazy.origin): single '}' in @format")
                }
                output.append("}")
                index = template.index(after: next)
            } else {
                output.append(character)
                index = next
            }
        }
        return output
    }

    func fieldValue(_ field: String, lazy: LazySetting, depth: Int) throws(SettingsError) -> String {
        if field.contains(":") || field.contains("!") {
            throw SettingsError(message: "\(lazy.origin): format specs and conversions in {\(field)} are not supported")
        }
        // this.A.B, this[A], env[NAME], settings.X
        var parts: [String] = []
        var current = ""
        for character in field {
            if character == "." || character == "[" {
                parts.append(current)
                current = ""
            } else if character != "]" {
                current.append(character)
            }
        }
        parts.append(current)
        guard let context = parts.first else { throw SettingsError(message: "\(lazy.origin): empty field in @format") }
        switch context {
        case "env":
            guard parts.count == 2, let value = environment[parts[1]] else {
                throw SettingsError(message: "\(lazy.origin): {\(field)}: no such variable")
            }
            return value
        case "this", "settings":
            guard parts.count >= 2, let value = lookup(Array(parts.dropFirst()), in: root) else {
                throw SettingsError(message: "\(lazy.origin): {\(field)}: no such setting")
            }
            return try pythonString(try resolve(value, depth: depth + 1), origin: lazy.origin)
        default:
            throw SettingsError(message: "\(lazy.origin): {\(field)}: only this, settings and env can be used in @format")
        }
    }

    /// `str(value)` as Python prints scalars.
    func pythonString(_ value: SettingValue, origin: String) throws(SettingsError) -> String {
        switch value {
        case .string(let string): return string
        case .integer(let integer): return String(integer)
        case .float(let float): return float.description
        case .boolean(let flag): return flag ? "True" : "False"
        case .null: return "None"
        default: throw SettingsError(message: "\(origin): only scalar settings can be formatted into a string")
        }
    }
}
