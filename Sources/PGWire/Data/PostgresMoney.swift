import Foundation
import Transport

/// two-digit `lc_monetary`).
public struct PostgresMoney: Sendable, Hashable, PostgresEncodable, PostgresDecodable {
    /// The amount in minor units.
    public var minorUnits: Int64

    /// Creates an amount.
    public init(minorUnits: Int64) { self.minorUnits = minorUnits }

    public static var postgresDataType: PostgresDataType { .money }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(minorUnits) }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .money else { throw PostgresDecodingError.mismatch(type, PostgresMoney.self) }
        guard isBinary, cell.readableBytes == 8 else {
            throw PostgresDecodingError(reason: "money in text depends on lc_monetary; decode it as String or use the extended protocol")
        }
        self.init(minorUnits: cell.getInteger(as: Int64.self) ?? 0)
    }
}
