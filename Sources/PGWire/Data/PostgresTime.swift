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
