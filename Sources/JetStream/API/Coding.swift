import Foundation

// The JetStream API's JSON conventions: snake_case keys, durations as integer nanoseconds,
// fields the server omits take the server's defaults, fields it adds later are ignored.

extension Duration {
    /// The duration in whole nanoseconds (saturating), as the API writes durations.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the server left it out (or sent null).
    func value<Value: Decodable>(_ key: Key, or fallback: Value) throws -> Value {
        try decodeIfPresent(Value.self, forKey: key) ?? fallback
    }

    /// A duration sent as integer nanoseconds, or `fallback` when absent.
    func duration(_ key: Key, or fallback: Duration = .zero) throws -> Duration {
        guard let nanoseconds = try decodeIfPresent(Int64.self, forKey: key) else { return fallback }
        return .nanoseconds(nanoseconds)
    }

    /// An optional duration sent as integer nanoseconds.
    func optionalDuration(_ key: Key) throws -> Duration? {
        try decodeIfPresent(Int64.self, forKey: key).map { .nanoseconds($0) }
    }
}

extension KeyedEncodingContainer {
    /// Writes a duration as integer nanoseconds.
    mutating func encode(duration: Duration, forKey key: Key) throws {
        try encode(duration.nanoseconds, forKey: key)
    }

    /// Writes `value` unless it is nil (nats.go's `omitempty`).
    mutating func encode<Value: Encodable>(ifPresent value: Value?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) }
    }

    /// Writes `flag` only when it is true (nats.go's `omitempty` on a bool).
    mutating func encode(ifTrue flag: Bool, forKey key: Key) throws {
        if flag { try encode(true, forKey: key) }
    }
}

/// The JSON coders the API uses; fresh per call, as Foundation's coders are not Sendable.
enum JetStreamJSON {
    static func encode<Value: Encodable>(_ value: Value) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from data: Data) throws -> Value {
        try JSONDecoder().decode(type, from: data)
    }
}

/// A version `major.minor.patch` read from INFO, for feature checks.
public struct ServerVersion: Sendable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    /// Creates a version.
    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `2.10.4`, `v2.11.0-RC.1` and the like; missing parts are 0.
    public init(parsing text: String) {
        let numbers = text.split(whereSeparator: { !$0.isNumber }).prefix(3).map { Int($0) ?? 0 }
        self.init(numbers.count > 0 ? numbers[0] : 0, numbers.count > 1 ? numbers[1] : 0, numbers.count > 2 ? numbers[2] : 0)
    }

    public static func < (lhs: ServerVersion, rhs: ServerVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    /// `major.minor.patch`.
    public var description: String { "\(major).\(minor).\(patch)" }
}
