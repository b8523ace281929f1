/// A resolved setting: the value types Dynaconf produces from TOML files and variables.
public indirect enum SettingValue: Sendable, Equatable {
    /// A string.
    case string(String)
    /// An integer.
    case integer(Int64)
    /// A float.
    case float(Double)
    /// A boolean.
    case boolean(Bool)
    /// `@none` and JSON null.
    case null
    /// A TOML date, time or date-time, kept in its TOML form.
    case dateTime(TOMLValue)
    /// A list.
    case array([SettingValue])
    /// A table with keys in order.
    case table(SettingsTable)
    /// An `@format` or `@get` value while layers are still being merged; a loaded tree has none.
    case unresolved(LazySetting)

    /// Converts a parsed TOML value.
    public init(_ value: TOMLValue) {
        switch value {
        case .string(let string): self = .string(string)
        case .integer(let integer): self = .integer(integer)
        case .float(let float): self = .float(float)
        case .boolean(let boolean): self = .boolean(boolean)
        case .offsetDateTime, .localDateTime, .localDate, .localTime: self = .dateTime(value)
        case .array(let elements): self = .array(elements.map(SettingValue.init))
        case .table(let table):
            var converted = SettingsTable()
            for (key, child) in table.entries { converted[key] = SettingValue(child) }
            self = .table(converted)
        }
    }

    /// The table, if this value is one.
    public var table: SettingsTable? {
        if case .table(let table) = self { return table }
        return nil
    }
}

/// An `@format` template or an `@get` reference, evaluated after every layer is merged, with an
/// optional converter applied to the result (`@int @format …`).
public struct LazySetting: Sendable, Equatable {
    /// What to evaluate.
    public enum Kind: Sendable, Equatable {
        /// A Python `str.format` template over `this` (the settings) and `env` (the variables).
        case format(String)
        /// A setting looked up by (dotted) key, with an optional default.
        case get(key: String, castToken: String?, defaultValue: String?)
    }

    /// What to evaluate.
    public var kind: Kind
    /// A converter token applied to the result, such as `@int`.
    public var castToken: String?
    /// Where the value came from, for errors.
    public var origin: String
}

/// An ordered table of settings whose lookups can ignore case, as Dynaconf's do.
public struct SettingsTable: Sendable, Equatable {
    private var storage = OrderedValues<SettingValue>()

    /// Creates an empty table.
    public init() {}

    /// Keys in order.
    public var keys: [String] { storage.keys }

    /// The value under exactly `key`.
    public subscript(key: String) -> SettingValue? {
        get { storage[key] }
        set { storage[key] = newValue }
    }

    /// The stored spelling of `key`, matched exactly, then ignoring case (and spaces as underscores).
    public func existingKey(matching key: String) -> String? {
        if storage.index.position(of: key) != nil { return key }
        if let match = keys.first(where: { $0.equalsIgnoringCase(key) }) { return match }
        return keys.first { $0.contains(" ") && String($0.map { $0 == " " ? "_" : $0 }).equalsIgnoringCase(key) }
    }

    /// The value under `key`, ignoring case.
    public func value(forKeyIgnoringCase key: String) -> SettingValue? {
        existingKey(matching: key).flatMap { self[$0] }
    }

    /// Key/value pairs in order.
    public var entries: [(key: String, value: SettingValue)] { storage.entries }

    /// Equal when the same keys hold equal values, in any order.
    public static func == (lhs: SettingsTable, rhs: SettingsTable) -> Bool { lhs.storage.hasSameContents(as: rhs.storage) }
}

