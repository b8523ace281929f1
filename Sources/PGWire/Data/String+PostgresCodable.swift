import Foundation
import Transport

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .text }
    public func encode(into buffer: inout ByteBuffer) { _ = buffer.writeString(self) }
    /// Text types decode as they are; any other type decodes from its text form when the cell is
    /// text, and numeric and uuid from binary too.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        switch type {
        case .text, .varchar, .bpchar, .name, .unknown, .json, .xml, .char:
            self = cell.cellText
        case .jsonb where isBinary:
            guard cell.getInteger(as: UInt8.self) == 1 else { throw PostgresDecodingError.malformed(type, "unknown jsonb version") }
            self = String(decoding: cell.readableBytesView.dropFirst(), as: UTF8.self)
        case .numeric where isBinary:
            self = try PostgresNumeric.decode(cell).description
        case .uuid where isBinary:
            self = try UUID(postgresCell: cell, type: type, isBinary: true).uuidString.lowercased()
        default:
            // Enums (their own OIDs) send their label; other built-ins need their own decoder.
            guard !isBinary || !type.isBuiltin else { throw PostgresDecodingError.mismatch(type, String.self) }
            self = cell.cellText
        }
    }
}
