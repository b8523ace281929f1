import Foundation
import Transport

/// A `macaddr`: six bytes.
public struct PostgresMACAddress: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// The six bytes.
    public var bytes: [UInt8]

    /// Creates a MAC address; nil unless six bytes are given.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    public static var postgresDataType: PostgresDataType { .macaddr }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeBytes(bytes) }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .macaddr else { throw PostgresDecodingError.mismatch(type, PostgresMACAddress.self) }
        let raw: [UInt8]?
        if isBinary {
            raw = Array(cell.readableBytesView)
        } else {
            let parts = cell.cellText.split(whereSeparator: { $0 == ":" || $0 == "-" })
            raw = parts.count == 6 ? parts.compactMap { UInt8($0, radix: 16) } : nil
        }
        guard let raw, let value = PostgresMACAddress(bytes: raw) else {
            throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        }
        self = value
    }

    /// `08:00:2b:01:02:03`.
    public var description: String { bytes.map { Crypto.hex([$0]) }.joined(separator: ":") }
}

/// A `money` value: an integer count of the currency's smallest unit (cents with the usual
