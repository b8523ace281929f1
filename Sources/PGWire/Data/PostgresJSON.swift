import Foundation
import Transport

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
