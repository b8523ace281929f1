/// Keys in insertion order with their positions: a linear search for small tables (the common
/// case), a hash index once there are more than `threshold` keys. Shared by the TOML and settings
/// tables, which keep their values in an array beside it.
struct KeyIndex: Sendable {
    private(set) var keys: [String] = []
    private var index: [String: Int]?
    static let threshold = 12

    init() {}

    /// Keys known to be unique, in order.
    init(uniqueKeys: [String]) {
        keys = uniqueKeys
        if keys.count > Self.threshold { rebuild() }
    }

    var count: Int { keys.count }

    /// Position of `key`, or nil.
    func position(of key: String) -> Int? {
        if let index { return index[key] }
        return keys.firstIndex(of: key)
    }

    /// Appends a key that is not present yet; returns its position.
    mutating func append(_ key: String) -> Int {
        keys.append(key)
        if index != nil {
            index?[key] = keys.count - 1
        } else if keys.count > Self.threshold {
            rebuild()
        }
        return keys.count - 1
    }

    /// Removes the key at `position`.
    mutating func remove(at position: Int) {
        keys.remove(at: position)
        if keys.count > Self.threshold { rebuild() } else { index = nil }
    }

    private mutating func rebuild() {
        index = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
    }
}

/// Values under string keys, in insertion order: the storage of TOML and settings tables.
struct OrderedValues<Value: Sendable & Equatable>: Sendable {
    private(set) var index = KeyIndex()
    private(set) var values: [Value] = []

    init() {}

    /// Keys and values of the same count, keys unique.
    init(uniqueKeys: [String], values: [Value]) {
        index = KeyIndex(uniqueKeys: uniqueKeys)
        self.values = values
    }

    var keys: [String] { index.keys }
    var count: Int { index.count }

    subscript(key: String) -> Value? {
        get { index.position(of: key).map { values[$0] } }
        set {
            if let existing = index.position(of: key) {
                if let newValue {
                    values[existing] = newValue
                } else {
                    index.remove(at: existing)
                    values.remove(at: existing)
                }
            } else if let newValue {
                _ = index.append(key)
                values.append(newValue)
            }
        }
    }

    var entries: [(key: String, value: Value)] { Array(zip(index.keys, values)) }

    /// The same keys with equal values, in any order.
    func hasSameContents(as other: OrderedValues) -> Bool {
        guard count == other.count else { return false }
        for (key, value) in zip(index.keys, values) where other[key] != value { return false }
        return true
    }
}
