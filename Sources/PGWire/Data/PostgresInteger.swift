import Foundation
import Transport

// MARK: - Integers

/// Decodes any integer column (int2, int4, int8, oid) into `T`, checking the range.
@inlinable
func decodeInteger<T: FixedWidthInteger>(_ cell: ByteBuffer, _ type: PostgresDataType, _ isBinary: Bool) throws(PostgresDecodingError) -> T {
    guard isBinary else {
        guard let value = T(cell.cellText) else {
            throw PostgresDecodingError(reason: "\"\(cell.cellText.prefix(40))\" is not a \(T.self)")
        }
        return value
    }
    let wide: Int64
    switch (type, cell.readableBytes) {
    case (.int8, 8): wide = cell.getInteger(as: Int64.self) ?? 0
    case (.int4, 4): wide = Int64(cell.getInteger(as: Int32.self) ?? 0)
    case (.int2, 2): wide = Int64(cell.getInteger(as: Int16.self) ?? 0)
    case (.oid, 4), (.regproc, 4): wide = Int64(cell.getInteger(as: UInt32.self) ?? 0)
    case (.int8, _), (.int4, _), (.int2, _), (.oid, _), (.regproc, _):
        throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
    default:
        throw PostgresDecodingError.mismatch(type, T.self)
    }
    guard let value = T(exactly: wide) else {
        throw PostgresDecodingError(reason: "\(wide) does not fit in \(T.self)")
    }
    return value
}

/// The integer types: each encodes as its own PostgreSQL type and decodes from any integer
/// column whose value fits.
public protocol PostgresInteger: FixedWidthInteger, PostgresEncodable, PostgresDecodable {}

extension PostgresInteger {
    /// Decodes int2, int4, int8 and oid cells, binary or text, checking the range.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        self = try decodeInteger(cell, type, isBinary)
    }

    /// Writes the value big-endian in its own width.
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(self) }
}

extension Int64: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int8 }
}

extension Int: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int8 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(Int64(self)) }
}

extension Int32: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int4 }
}

extension Int16: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int2 }
}

extension UInt32: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .oid }
}
