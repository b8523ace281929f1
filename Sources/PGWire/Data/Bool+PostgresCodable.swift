import Foundation
import Transport

extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .bool }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(UInt8(self ? 1 : 0)) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .bool else { throw PostgresDecodingError.mismatch(type, Bool.self) }
        if isBinary {
            guard cell.readableBytes == 1, let byte = cell.getInteger(as: UInt8.self), byte <= 1 else {
                throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
            }
            self = byte == 1
        } else {
            switch cell.cellText {
            case "t": self = true
            case "f": self = false
            default: throw PostgresDecodingError.malformed(type, "\"\(cell.cellText.prefix(10))\"")
            }
        }
    }
}
