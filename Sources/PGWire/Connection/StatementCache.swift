/// The per-connection cache of prepared statements: SQL and parameter types to a server-side
/// statement name and its row description. Least recently used entries are evicted, and their
/// names handed back so the driver can Close them on the server.
struct StatementCache: Sendable {
    struct Key: Hashable, Sendable {
        var sql: String
        var types: [PostgresDataType]
    }

    struct Entry: Sendable {
        var name: String
        /// The result columns once the server described them (nil until the first response).
        var columns: [RowDescription.Column]?
        var lastUse: UInt64
    }

    let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0
    private var nextName = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    var isEnabled: Bool { capacity > 0 }

    /// The entry for `key`, marked as just used.
    mutating func lookup(_ key: Key) -> Entry? {
        guard let index = entries.index(forKey: key) else { return nil }
        clock &+= 1
        entries.values[index].lastUse = clock
        return entries.values[index]
    }

    /// Adds an entry with a fresh name; returns it and the name of an evicted statement, if any.
    mutating func insert(_ key: Key) -> (name: String, evicted: String?) {
        var evicted: String?
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            evicted = oldest.value.name
            entries[oldest.key] = nil
        }
        nextName += 1
        clock &+= 1
        let name = "pgwire_\(nextName)"
        entries[key] = Entry(name: name, columns: nil, lastUse: clock)
        return (name, evicted)
    }

    /// Records the row description the server gave for a statement.
    mutating func describe(_ key: Key, name: String, columns: [RowDescription.Column]) {
        guard var entry = entries[key], entry.name == name else { return }
        entry.columns = columns
        entries[key] = entry
    }

    /// Forgets a statement (its Parse failed, or its plan changed); returns its name.
    @discardableResult
    mutating func remove(_ key: Key) -> String? {
        entries.removeValue(forKey: key)?.name
    }

    /// Forgets every statement (the server discarded them); names are not reused.
    mutating func removeAll() {
        entries.removeAll()
    }
}
