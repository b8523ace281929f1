import Foundation
import Transport

/// An `inet` or `cidr` value: an IPv4 or IPv6 address with a prefix length.
public struct PostgresInet: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6, in network order.
    public var address: [UInt8]
    /// The prefix length in bits (32 or 128 for a single host).
    public var prefixLength: UInt8
    /// Whether this is a `cidr` (a network) rather than an `inet`.
    public var isCIDR: Bool

    /// Creates a value; nil unless `address` has 4 or 16 bytes and the prefix fits.
    public init?(address: [UInt8], prefixLength: UInt8? = nil, isCIDR: Bool = false) {
        guard address.count == 4 || address.count == 16 else { return nil }
        let bits = UInt8(address.count * 8)
        guard (prefixLength ?? bits) <= bits else { return nil }
        self.address = address
        self.prefixLength = prefixLength ?? bits
        self.isCIDR = isCIDR
    }

    /// Parses `192.168.0.1`, `10.0.0.0/8`, `::1`, `2001:db8::/32`.
    public init?(_ text: String, isCIDR: Bool = false) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        let family: Int32
        if inet_pton(AF_INET, String(first), &bytes) == 1 {
            family = AF_INET
        } else if inet_pton(AF_INET6, String(first), &bytes) == 1 {
            family = AF_INET6
        } else {
            return nil
        }
        let address = Array(bytes.prefix(family == AF_INET ? 4 : 16))
        var prefix: UInt8?
        if parts.count == 2 {
            guard let value = UInt8(parts[1]) else { return nil }
            prefix = value
        }
        self.init(address: address, prefixLength: prefix, isCIDR: isCIDR)
    }

    public static var postgresDataType: PostgresDataType { .inet }

    public func encode(into buffer: inout ByteBuffer) {
        // The server's family codes: PGSQL_AF_INET = AF_INET (2), PGSQL_AF_INET6 = AF_INET + 1.
        buffer.writeInteger(UInt8(address.count == 4 ? 2 : 3))
        buffer.writeInteger(prefixLength)
        buffer.writeInteger(UInt8(isCIDR ? 1 : 0))
        buffer.writeInteger(UInt8(address.count))
        buffer.writeBytes(address)
    }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .inet || type == .cidr else { throw PostgresDecodingError.mismatch(type, PostgresInet.self) }
        guard isBinary else {
            guard let value = PostgresInet(cell.cellText, isCIDR: type == .cidr) else {
                throw PostgresDecodingError.malformed(type, "\"\(cell.cellText.prefix(60))\"")
            }
            self = value
            return
        }
        var body = cell
        guard let family = body.readInteger(as: UInt8.self), let bits = body.readInteger(as: UInt8.self),
            let cidr = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt8.self),
            (family == 2 && length == 4) || (family == 3 && length == 16), body.readableBytes == Int(length),
            let bytes = body.readBytes(count: Int(length)), let value = PostgresInet(address: bytes, prefixLength: bits, isCIDR: cidr == 1)
        else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
        self = value
    }

    /// The address, with `/prefix` unless it is a single host.
    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let family = address.count == 4 ? AF_INET : AF_INET6
        let written = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        var result = written == nil ? "?" : String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if isCIDR || prefixLength != UInt8(address.count * 8) { result += "/\(prefixLength)" }
        return result
    }
}
