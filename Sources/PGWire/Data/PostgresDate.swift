import Foundation
import Transport

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
