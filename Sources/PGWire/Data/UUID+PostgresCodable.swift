import Foundation
import Transport

extension UUID: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .uuid }
    public func encode(into buffer: inout ByteBuffer) {
        withUnsafeBytes(of: uuid) { buffer.writeBytes($0) }
    }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .uuid || type == .text || type == .varchar else { throw PostgresDecodingError.mismatch(type, UUID.self) }
        if isBinary, type == .uuid {
            guard cell.readableBytes == 16 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
            var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &raw) { target in
                for (index, byte) in cell.readableBytesView.enumerated() { target[index] = byte }
            }
            self = UUID(uuid: raw)
        } else {
            guard let value = UUID(uuidString: cell.cellText) else { throw PostgresDecodingError.malformed(type, "\"\(cell.cellText.prefix(40))\"") }
            self = value
        }
    }
}
