#if canImport(Glibc)
import Glibc
#endif

/// A failure to load settings: a file that is not TOML, a converter that cannot convert, or a
/// variable that would make Dynaconf load differently.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the file, section or variable.
    public var message: String
    /// `message`.
    public var description: String { message }
}

/// Resolves settings exactly as the Python workers' Dynaconf does with
/// `Dynaconf(envvar_prefix="TRANSCRIPTION", settings_files=["settings.toml", ".secrets.toml"],
/// environments=True, load_dotenv=True)`.
///
/// Order: `.env` into the environment (never over a real variable); the files `settings.toml`,
/// `.secrets.toml`, then the `.local.` twin of each file found; in each file the sections
/// `[default]`, `[transcription]`, the current environment(s), `[global]`; then `DYNACONF_*` and
/// `TRANSCRIPTION_*` variables. A table or list replaces the existing one unless merging is asked.
public struct SettingsLoader: Sendable {
    /// The variable prefix (case-sensitive).
    public var prefix = "TRANSCRIPTION"
    /// Settings files in load order.
    public var files = ["settings.toml", ".secrets.toml"]
    /// Where files are searched first (then its `config/` folder, then each parent); the working
    /// directory when nil.
    public var root: String?

    /// Creates a loader with the project's configuration.
    public init(root: String? = nil) {
        self.root = root
    }

    /// The outcome of a load.
    public struct Result: Sendable {
        /// The resolved tree; top-level keys upper-case.
        public var settings: SettingsTable
        /// The active environment as Dynaconf reports it: as given (commas included), `DEVELOPMENT` by default.
        public var environment: String
        /// The files read, in order.
        public var loadedFiles: [String]
        /// Where values came from, by upper-cased dotted path (`DATABASE.HOST`): a file and section,
        /// or a variable. A path not listed inherits the source of its nearest listed parent.
        public var sources: [String: String]

        /// The source of the value at `path` (keys in any case), or nil for a built-in default.
        public func source(of path: [String]) -> String? {
            var candidate = path.map { $0.uppercased() }
            while !candidate.isEmpty {
                if let origin = sources[candidate.joined(separator: ".")] { return origin }
                candidate.removeLast()
            }
            return nil
        }
    }

    /// Loads with `environment` as the process's real variables.
    public func load(environment realEnvironment: [String: String]) throws(SettingsError) -> Result {
        var environment = realEnvironment
        if let dotenvPath = findFile(".env") {
            let text = String(decoding: readFile(dotenvPath) ?? [], as: UTF8.self)
            for (key, value) in DotEnv(parsing: text).variables(overlaying: realEnvironment) {
                environment[key] = value
            }
        }
        let refused = environment.keys.filter { $0.hasSuffix("_FOR_DYNACONF") && $0 != "ENV_FOR_DYNACONF" }.sorted()
        if !refused.isEmpty {
            throw SettingsError(message: "these variables change how Dynaconf loads and are not supported, so the Swift and Python services could disagree: \(refused.joined(separator: ", "))")
        }
        let currentEnvironment = (environment["ENV_FOR_DYNACONF"].map { Self.tomlfy($0) }).flatMap { value -> String? in
            if case .string(let string) = value { return string }
            return nil
        } ?? "DEVELOPMENT"
        var sections = ["default", prefix.lowercased()]
        for item in currentEnvironment.split(separator: ",") {
            let name = String(item).trimmingSpaces().lowercased()
            if !name.isEmpty && !sections.contains(name) { sections.append(name) }
        }
        sections.append("global")

        var state = SettingsState()
        state.store["LOAD_DOTENV"] = .boolean(true)
        var found: [String] = []
        for file in files {
            if let path = findFile(file) { found.append(path) }
        }
        found += found.filter { !$0.contains(".local.") }.map(Self.localTwin)
        var loaded: [String] = []
        for path in found {
            guard let bytes = readFile(path) else { continue }
            loaded.append(path)
            let document: TOMLTable
            do {
                // The bytes as they are: invalid UTF-8 is an error with its position, not repaired.
                document = try TOML.parse(bytes: bytes)
            } catch {
                throw SettingsError(message: "\(path): \(error)")
            }
            try state.loadFile(document, sections: sections, path: path)
        }
        for variablePrefix in ["DYNACONF", prefix] {
            let head = variablePrefix + "_"
            for (name, raw) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(head) {
                let key = String(name.dropFirst(head.count))
                guard !key.isEmpty else { continue }
                let value = try Self.parseVariable(raw, name: name)
                try state.set(key, value, merge: nil, origin: "variable \(name)")
            }
        }
        var evaluator = LazyEvaluator(environment: environment, root: state.store)
        return Result(
            settings: try evaluator.resolveAll(), environment: currentEnvironment, loadedFiles: loaded, sources: state.sources)
    }

    static func localTwin(_ path: String) -> String {
        guard let dot = path.lastIndex(of: ".") else { return path + ".local" }
        return String(path[..<dot]) + ".local" + String(path[dot...])
    }

    /// The search tree: the root, its `config/`, then each parent and its `config/`.
    func findFile(_ name: String) -> String? {
        var directory = root ?? currentDirectory()
        while true {
            for candidate in [directory + "/" + name, directory + "/config/" + name] where access(candidate, F_OK) == 0 {
                return candidate
            }
            guard let slash = directory.lastIndex(of: "/"), directory != "/" else { return nil }
            let parent = String(directory[..<slash])
            directory = parent.isEmpty ? "/" : parent
        }
    }

    func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The file's bytes, or nil when it cannot be opened.
    func readFile(_ path: String) -> [UInt8]? {
        guard let handle = fopen(path, "rb") else { return nil }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, handle)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    /// A variable's value: `True`/`False` fixed to TOML booleans, `@token` converters, otherwise
    /// TOML typing with the raw string as the fallback.
    static func parseVariable(_ raw: String, name: String) throws(SettingsError) -> ParsedValue {
        let trimmed = raw.trimmingSpaces()
        let fixed = (trimmed == "True" || trimmed == "False") ? raw.lowercased() : raw
        if let converted = try Converter.apply(fixed, origin: name) { return converted }
        return .value(tomlfy(fixed))
    }

    /// Dynaconf's `parse_with_toml`: the value of `key=<text>`, or the text itself.
    static func tomlfy(_ text: String) -> SettingValue {
        guard let document = try? TOML.parse("key=" + text), let value = document["key"] else { return .string(text) }
        return SettingValue(value)
    }
}

/// A value on its way into the store, with Dynaconf's meta-values.
enum ParsedValue: Sendable {
    case value(SettingValue)
    case delete
    case merge(SettingValue)
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
