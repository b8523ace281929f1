import Foundation
import Transport

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .float8 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(bitPattern) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        if !isBinary {
            guard type == .float8 || type == .float4 || type == .numeric || type == .int2 || type == .int4 || type == .int8,
                let value = Double(cell.cellText.replacingOccurrences(of: "Infinity", with: "inf"))
            else { throw PostgresDecodingError(reason: "\"\(cell.cellText.prefix(40))\" is not a Double") }
            self = value
            return
        }
        switch (type, cell.readableBytes) {
        case (.float8, 8): self = Double(bitPattern: cell.getInteger(as: UInt64.self) ?? 0)
        case (.float4, 4): self = Double(Float(bitPattern: cell.getInteger(as: UInt32.self) ?? 0))
        case (.int2, _), (.int4, _), (.int8, _): self = Double(try decodeInteger(cell, type, isBinary) as Int64)
        case (.numeric, _):
            let text = try PostgresNumeric.decode(cell).description
            guard let value = Double(text) else { throw PostgresDecodingError.malformed(type, text) }
            self = value
        case (.float8, _), (.float4, _): throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        default: throw PostgresDecodingError.mismatch(type, Double.self)
        }
    }
}

extension Float: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .float4 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(bitPattern) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        if isBinary, type == .float4 {
            guard cell.readableBytes == 4 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
            self = Float(bitPattern: cell.getInteger(as: UInt32.self) ?? 0)
        } else {
            self = Float(try Double(postgresCell: cell, type: type, isBinary: isBinary))
        }
    }
}
