import Foundation
import Transport

/// A `time` or `timetz` value: microseconds since midnight, and for timetz the zone's offset.
public struct PostgresTime: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// Microseconds since midnight (0 ..< 86,400,000,000; 24:00:00 is allowed too).
    public var microseconds: Int64
    /// The UTC offset in seconds east of Greenwich (timetz only).
    public var utcOffsetSeconds: Int32?

    /// Creates a time of day.
    public init(microseconds: Int64, utcOffsetSeconds: Int32? = nil) {
        self.microseconds = microseconds
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    /// Creates a time of day from its parts.
    public init(hour: Int, minute: Int, second: Int, microsecond: Int = 0, utcOffsetSeconds: Int32? = nil) {
        self.init(
            microseconds: Int64(((hour * 60 + minute) * 60 + second)) * 1_000_000 + Int64(microsecond), utcOffsetSeconds: utcOffsetSeconds)
    }

    public static var postgresDataType: PostgresDataType { .time }

    /// Encodes as time; a value with an offset should be bound as `\(value)::timetz` after
    /// ``PostgresTimeWithZone``.
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(microseconds) }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard isBinary else { throw PostgresDecodingError(reason: "text \(type) is decoded as String; use the extended protocol") }
        switch (type, cell.readableBytes) {
        case (.time, 8):
            self.init(microseconds: cell.getInteger(as: Int64.self) ?? 0)
        case (.timetz, 12):
            // The wire carries seconds west of Greenwich.
            let west = cell.getInteger(at: 8, as: Int32.self) ?? 0
            self.init(microseconds: cell.getInteger(as: Int64.self) ?? 0, utcOffsetSeconds: -west)
        case (.time, _), (.timetz, _):
            throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        default:
            throw PostgresDecodingError.mismatch(type, PostgresTime.self)
        }
    }

    /// `HH:MM:SS[.ffffff][+HH:MM]`.
    public var description: String {
        let seconds = microseconds / 1_000_000
        let fraction = microseconds % 1_000_000
        var text = String(format: "%02lld:%02lld:%02lld", seconds / 3600, seconds / 60 % 60, seconds % 60)
        if fraction != 0 { text += String(format: ".%06lld", fraction) }
        if let offset = utcOffsetSeconds {
            let magnitude = abs(Int(offset))
            text += String(format: "%@%02d:%02d", offset < 0 ? "-" : "+", magnitude / 3600, magnitude / 60 % 60)
        }
        return text
    }
}

/// A `timetz` parameter: a time of day with its zone offset.
public struct PostgresTimeWithZone: Sendable, Hashable, PostgresEncodable {
    /// The time and offset.
    public var time: PostgresTime

    /// Wraps a time that has an offset (none counts as UTC).
    public init(_ time: PostgresTime) { self.time = time }

    public static var postgresDataType: PostgresDataType { .timetz }
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(time.microseconds)
        buffer.writeInteger(-(time.utcOffsetSeconds ?? 0))
    }
}

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

/// A `date` parameter or result: days since 2000-01-01 on the server's calendar, with the
/// server's `infinity` and `-infinity`.
public struct PostgresDate: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// Days since 2000-01-01 (Int32.max and Int32.min are infinity and -infinity).
    public var daysSince2000: Int32

    /// Wraps a day count.
    public init(daysSince2000: Int32) { self.daysSince2000 = daysSince2000 }

    /// The UTC calendar day of `date`.
    public init(_ date: Date) {
        let days = (date.timeIntervalSince1970 / 86_400).rounded(.down) - Double(PostgresEpoch.epochOffsetDays)
        self.init(daysSince2000: Int32(clamping: Int64(days)))
    }

    /// Midnight UTC of the day.
    public var date: Date { Date(timeIntervalSince1970: Double(Int(daysSince2000) + PostgresEpoch.epochOffsetDays) * 86_400) }

    public static var postgresDataType: PostgresDataType { .date }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(daysSince2000) }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .date else { throw PostgresDecodingError.mismatch(type, PostgresDate.self) }
        guard isBinary, cell.readableBytes == 4 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
        self.init(daysSince2000: cell.getInteger(as: Int32.self) ?? 0)
    }

    /// `YYYY-MM-DD` (proleptic Gregorian, UTC), or `infinity` / `-infinity`.
    public var description: String {
        if daysSince2000 == .max { return "infinity" }
        if daysSince2000 == .min { return "-infinity" }
        // Civil-from-days (H. Hinnant's algorithm), from 1970-01-01.
        let z = Int64(daysSince2000) + Int64(PostgresEpoch.epochOffsetDays) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return String(format: "%04lld-%02lld-%02lld", year, month, day)
    }
}
