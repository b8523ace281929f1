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

/// A `json` or `jsonb` value holding a Codable Swift value. Sent as jsonb.
public struct PostgresJSON<Value: Codable & Sendable>: Sendable, PostgresEncodable, PostgresDecodable {
    /// The value.
    public var value: Value

    /// Wraps a value.
    public init(_ value: Value) { self.value = value }

    public static var postgresDataType: PostgresDataType { .jsonb }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(1))  // jsonb's binary format version
        // Encoding a Codable value fails only for values JSON cannot hold (a NaN double …);
        // they go as JSON null, which the server then stores.
        let data = (try? JSONEncoder().encode(value)) ?? Data("null".utf8)
        buffer.writeBytes(data)
    }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        value = try decodeJSONCell(cell, type: type, isBinary: isBinary)
    }
}

/// Decodes a json or jsonb cell (or a text one holding JSON) into any Decodable type.
func decodeJSONCell<Value: Decodable>(_ cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) -> Value {
    var bytes = cell.readableBytesView[...]
    switch type {
    case .jsonb where isBinary:
        guard bytes.first == 1 else { throw PostgresDecodingError.malformed(type, "unknown jsonb version") }
        bytes = bytes.dropFirst()
    case .json, .jsonb, .text, .varchar:
        break
    default:
        throw PostgresDecodingError.mismatch(type, Value.self)
    }
    do {
        return try JSONDecoder().decode(Value.self, from: Data(bytes))
    } catch {
        throw PostgresDecodingError(reason: "JSON does not decode into \(Value.self): \(error)")
    }
}
