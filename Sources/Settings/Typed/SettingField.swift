/// One setting of a typed settings value: its dotted key, how it is read from the loaded tree
/// (with its validation), and how it prints with secrets masked. ``Settings/fields`` lists them.
public struct SettingField<Root>: Sendable {
    /// The key as the environment spells it: `POSTGRES.PORT` (variable `TRANSCRIPTION_POSTGRES__PORT`).
    public let key: String
    /// The key's parts.
    public var path: [String] { key.split(separator: ".").map(String.init) }
    let read: @Sendable (inout SettingsReader, inout Root) -> Void
    let print: @Sendable (Root) -> String

    /// Reads the field into `root`, reporting a wrong value to `reader` (the default stays).
    func decode(_ reader: inout SettingsReader, _ root: inout Root) { read(&reader, &root) }

    /// The field's value as it may be logged: secrets masked, URLs without passwords.
    public func describe(_ root: Root) -> String { print(root) }

    /// A field read by `read` (nil: absent, keep the default) and printed by `describe`.
    static func make<Value>(
        _ key: String, _ keyPath: WritableKeyPath<Root, Value> & Sendable,
        read: @escaping @Sendable (inout SettingsReader, [String], Value) -> Value,
        describe: @escaping @Sendable (Value) -> String
    ) -> SettingField {
        let path = key.split(separator: ".").map(String.init)
        return SettingField(
            key: key, read: { reader, root in root[keyPath: keyPath] = read(&reader, path, root[keyPath: keyPath]) },
            print: { root in describe(root[keyPath: keyPath]) })
    }

    /// Text; with `printsAsURL`, printed with any password removed.
    static func string(_ key: String, _ keyPath: WritableKeyPath<Root, String> & Sendable, printsAsURL: Bool = false) -> SettingField {
        make(key, keyPath, read: { $0.string($1, $2) }, describe: { printsAsURL ? URLRedaction.redact($0) : $0 })
    }

    /// A URL whose scheme must be one of `schemes`; printed without its password.
    static func url(
        _ key: String, _ keyPath: WritableKeyPath<Root, String> & Sendable, schemes: [String], bareUserInfoIsSecret: Bool = false
    ) -> SettingField {
        make(key, keyPath, read: { $0.url($1, $2, schemes: schemes) }, describe: { URLRedaction.redact($0, bareUserInfoIsSecret: bareUserInfoIsSecret) })
    }

    /// A secret: read as text, printed as a mask.
    static func secret(_ key: String, _ keyPath: WritableKeyPath<Root, Secret> & Sendable) -> SettingField {
        make(key, keyPath, read: { reader, path, _ in reader.secret(path) }, describe: { $0.description })
    }

    /// An integer within `range`.
    static func integer(_ key: String, _ keyPath: WritableKeyPath<Root, Int> & Sendable, in range: ClosedRange<Int>) -> SettingField {
        make(key, keyPath, read: { $0.integer($1, $2, in: range) }, describe: { String($0) })
    }

    /// A TCP port (1 to 65535).
    static func port(_ key: String, _ keyPath: WritableKeyPath<Root, Int> & Sendable) -> SettingField {
        integer(key, keyPath, in: 1...65535)
    }

    /// true or false.
    static func boolean(_ key: String, _ keyPath: WritableKeyPath<Root, Bool> & Sendable) -> SettingField {
        make(key, keyPath, read: { $0.boolean($1, $2) }, describe: { String($0) })
    }

    /// A level Python's logging understands, kept upper-case.
    static func logLevel(_ key: String, _ keyPath: WritableKeyPath<Root, String> & Sendable) -> SettingField {
        make(key, keyPath, read: { $0.choice($1, $2, from: Settings.logLevels) }, describe: { $0 })
    }

    /// One of an enumeration's raw values, compared without case.
    static func choice<Value: RawRepresentable & CaseIterable & Sendable>(_ key: String, _ keyPath: WritableKeyPath<Root, Value> & Sendable)
        -> SettingField where Value.RawValue == String
    {
        make(
            key, keyPath,
            read: { reader, path, fallback in
                let text = reader.string(path, fallback.rawValue)
                guard let value = Value(rawValue: text.lowercased()) else {
                    let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
                    reader.report(path, "expected one of \(allowed), got \(text.debugDescription)")
                    return fallback
                }
                return value
            }, describe: { $0.rawValue })
    }

    /// A list of tables read by `read` (nil when absent: the default list stays).
    static func list<Element>(
        _ key: String, _ keyPath: WritableKeyPath<Root, [Element]> & Sendable,
        read: @escaping @Sendable (inout SettingsReader, [String]) -> [Element]?, describe: @escaping @Sendable ([Element]) -> String
    ) -> SettingField {
        make(key, keyPath, read: { reader, path, fallback in read(&reader, path) ?? fallback }, describe: describe)
    }
}

/// Removal of passwords from URLs before they are printed.
enum URLRedaction {
    /// `scheme://user:***@host…`; user-info without a colon stays unless `bareUserInfoIsSecret`
    /// (Redis reads `redis://secret@host` as a password alone).
    static func redact(_ text: String, bareUserInfoIsSecret: Bool = false) -> String {
        let bytes = Array(text.utf8)
        guard let separator = text.firstRange(of: "://") else { return text }
        let authorityStart = text.utf8.distance(from: text.startIndex, to: separator.upperBound)
        var authorityEnd = authorityStart
        while authorityEnd < bytes.count, !"/?#".utf8.contains(bytes[authorityEnd]) { authorityEnd += 1 }
        guard let at = bytes[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) else { return text }
        let userInfo = bytes[authorityStart..<at]
        let kept: ArraySlice<UInt8>
        if let colon = userInfo.firstIndex(of: UInt8(ascii: ":")) {
            kept = bytes[authorityStart...colon]
        } else if bareUserInfoIsSecret {
            kept = []
        } else {
            return text
        }
        return String(decoding: bytes[..<authorityStart] + kept + Array("***".utf8) + bytes[at...], as: UTF8.self)
    }
}
