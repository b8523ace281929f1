/// State commands left on a connection that the next user of a pooled connection must not
/// inherit, read from the command names as they are sent.
public struct RedisSessionChanges: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `SELECT`: another database than the configured one.
    public static let database = RedisSessionChanges(rawValue: 1 << 0)
    /// `MULTI` without its `EXEC` or `DISCARD`.
    public static let transaction = RedisSessionChanges(rawValue: 1 << 1)
    /// `WATCH` without `EXEC`, `DISCARD` or `UNWATCH`.
    public static let watching = RedisSessionChanges(rawValue: 1 << 2)
    /// `CLIENT TRACKING` (or any other `CLIENT` setting but `SETNAME`/`GETNAME`/`ID`/`INFO`).
    public static let clientSettings = RedisSessionChanges(rawValue: 1 << 3)
    /// Pushes asked for (subscriptions, `MONITOR`, `READONLY`, `HELLO`, `RESET`, `AUTH` …):
    /// what cannot be undone with certainty; the connection is closed rather than reused.
    public static let unrecoverable = RedisSessionChanges(rawValue: 1 << 4)

    /// Updates the changes for a command about to be sent. Costs a few byte comparisons for
    /// the commands that change nothing, no allocation.
    mutating func record(_ arguments: [RESPArgument]) {
        arguments.withUnsafeBufferPointer { record($0) }
    }

    /// The same over borrowed arguments (a pipeline's commands, read in place).
    mutating func record(_ arguments: UnsafeBufferPointer<RESPArgument>) {
        guard !arguments.isEmpty, case .string(let name) = arguments[0] else { return }
        var utf8 = name.utf8
        let count = utf8.count
        guard count >= 4, count <= 9 else { return }
        switch utf8.first.map({ $0 & 0xDF }) {
        case UInt8(ascii: "S"):
            if Self.equals(&utf8, "SELECT") { insert(.database) }
        case UInt8(ascii: "M"):
            if Self.equals(&utf8, "MULTI") { insert(.transaction) } else if Self.equals(&utf8, "MONITOR") { insert(.unrecoverable) }
        case UInt8(ascii: "E"):
            if Self.equals(&utf8, "EXEC") { remove([.transaction, .watching]) }
        case UInt8(ascii: "D"):
            if Self.equals(&utf8, "DISCARD") { remove([.transaction, .watching]) }
        case UInt8(ascii: "W"):
            if Self.equals(&utf8, "WATCH") { insert(.watching) }
        case UInt8(ascii: "U"):
            if Self.equals(&utf8, "UNWATCH") { remove(.watching) }
        case UInt8(ascii: "C"):
            guard Self.equals(&utf8, "CLIENT"), arguments.count > 1, case .string(let sub) = arguments[1] else { return }
            switch sub.uppercased() {
            case "SETNAME", "GETNAME", "ID", "INFO", "LIST", "KILL", "SETINFO", "NO-EVICT", "NO-TOUCH": break
            case "TRACKING", "CACHING": insert(.clientSettings)
            default: insert(.unrecoverable)
            }
        case UInt8(ascii: "R"):
            if Self.equals(&utf8, "READONLY") || Self.equals(&utf8, "RESET") { insert(.unrecoverable) }
        case UInt8(ascii: "H"):
            if Self.equals(&utf8, "HELLO") { insert(.unrecoverable) }
        case UInt8(ascii: "A"):
            if Self.equals(&utf8, "AUTH") { insert(.unrecoverable) }
        default:
            return
        }
    }

    /// ASCII case-insensitive equality with an upper-case literal.
    private static func equals(_ utf8: inout String.UTF8View, _ upper: StaticString) -> Bool {
        guard utf8.count == upper.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: upper.utf8Start, count: upper.utf8CodeUnitCount)
        return zip(utf8, expected).allSatisfy { ($0 & 0xDF) == $1 || $0 == $1 }
    }
}
