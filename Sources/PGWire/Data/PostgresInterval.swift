import Foundation
import Transport

/// An `interval`: months, days and microseconds, kept apart as the server keeps them (a month
/// is not a fixed number of days, nor a day a fixed number of seconds across DST changes).
public struct PostgresInterval: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// Months (years are 12 months).
    public var months: Int32
    /// Days.
    public var days: Int32
    /// Microseconds.
    public var microseconds: Int64

    /// Creates an interval.
    public init(months: Int32 = 0, days: Int32 = 0, microseconds: Int64 = 0) {
        self.months = months
        self.days = days
        self.microseconds = microseconds
    }

    /// An interval of a fixed duration (no months or days).
    public init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(microseconds: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    public static var postgresDataType: PostgresDataType { .interval }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(microseconds)
        buffer.writeInteger(days)
        buffer.writeInteger(months)
    }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .interval else { throw PostgresDecodingError.mismatch(type, PostgresInterval.self) }
        guard isBinary else { throw PostgresDecodingError(reason: "text interval is decoded as String; use the extended protocol") }
        guard cell.readableBytes == 16 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
        self.init(
            months: cell.getInteger(at: 12, as: Int32.self) ?? 0, days: cell.getInteger(at: 8, as: Int32.self) ?? 0,
            microseconds: cell.getInteger(as: Int64.self) ?? 0)
    }

    /// ISO 8601 duration, `P1Y2M3DT4H5M6.5S`.
    public var description: String {
        var text = "P"
        if months / 12 != 0 { text += "\(months / 12)Y" }
        if months % 12 != 0 { text += "\(months % 12)M" }
        if days != 0 { text += "\(days)D" }
        if microseconds != 0 {
            text += "T"
            let seconds = microseconds / 1_000_000
            if seconds / 3600 != 0 { text += "\(seconds / 3600)H" }
            if seconds / 60 % 60 != 0 { text += "\(seconds / 60 % 60)M" }
            let rest = microseconds % 60_000_000
            if rest != 0 {
                var fraction = String(Double(rest) / 1_000_000)
                if fraction.hasSuffix(".0") { fraction.removeLast(2) }
                text += "\(fraction)S"
            }
        }
        return text == "P" ? "PT0S" : text
    }
}
