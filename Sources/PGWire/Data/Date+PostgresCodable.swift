import Foundation
import Transport

/// PostgreSQL's timestamps count microseconds from 2000-01-01 00:00:00 UTC.
enum PostgresEpoch {
    static let epochOffsetSeconds: Double = 946_684_800
    static let epochOffsetDays = 10_957
}

extension Date: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .timestamptz }
    public func encode(into buffer: inout ByteBuffer) {
        let microseconds = ((timeIntervalSince1970 - PostgresEpoch.epochOffsetSeconds) * 1_000_000).rounded()
        buffer.writeInteger(Int64(exactly: microseconds) ?? (microseconds < 0 ? Int64.min + 1 : Int64.max - 1))
    }
    /// timestamptz and timestamp (read as UTC) in microseconds, date at midnight UTC.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard isBinary else { throw PostgresDecodingError(reason: "a text \(type) cannot be decoded into Date; use the extended protocol") }
        switch (type, cell.readableBytes) {
        case (.timestamptz, 8), (.timestamp, 8):
            let microseconds = cell.getInteger(as: Int64.self) ?? 0
            if microseconds == .max { self = .distantFuture; return }
            if microseconds == .min { self = .distantPast; return }
            let seconds = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
            self = Date(timeIntervalSince1970: PostgresEpoch.epochOffsetSeconds + Double(seconds.quotient) + Double(seconds.remainder) / 1_000_000)
        case (.date, 4):
            let days = cell.getInteger(as: Int32.self) ?? 0
            if days == .max { self = .distantFuture; return }
            if days == .min { self = .distantPast; return }
            self = Date(timeIntervalSince1970: Double(Int(days) + PostgresEpoch.epochOffsetDays) * 86_400)
        case (.timestamptz, _), (.timestamp, _), (.date, _):
            throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        default:
            throw PostgresDecodingError.mismatch(type, Date.self)
        }
    }
}
