import Foundation
import Transport

extension PostgresRow {
    /// Decodes the row into a `Decodable` type, property by column name: the types this library
    /// decodes directly (Int, String, Date, UUID, Decimal, arrays, ranges …) from their cells,
    /// any other Decodable property from a json or jsonb cell. Errors name the column, its type
    /// and the Swift type.
    public func decode<T: Decodable>(as type: T.Type = T.self) throws -> T {
        try T(from: PostgresRowDecoder(row: self))
    }
}

/// A `Decoder` over one row: a keyed container whose keys are column names.
struct PostgresRowDecoder: Decoder {
    let row: PostgresRow
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Columns<Key>(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: codingPath, debugDescription: "a row decodes as a keyed container (by column name)"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: codingPath, debugDescription: "a row decodes as a keyed container (by column name)"))
    }

    struct Columns<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: PostgresRow
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { row.columns.compactMap { Key(stringValue: $0.name) } }

        func contains(_ key: Key) -> Bool { index(of: key) != nil }

        private func index(of key: Key) -> Int? { row.columns.firstIndex { $0.name == key.stringValue } }

        private func cell(_ key: Key) throws -> (Int, ByteBuffer?) {
            guard let index = index(of: key) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "the result has no column \"\(key.stringValue)\""))
            }
            return (index, row[index])
        }

        func decodeNil(forKey key: Key) throws -> Bool { try cell(key).1 == nil }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let (index, cell) = try cell(key)
            let column = row.columns[index]
            if let decodable = T.self as? any PostgresDecodable.Type {
                guard let value = try Self.open(decodable, cell, column, index) as? T else {
                    throw DecodingError.typeMismatch(T.self, .init(codingPath: [key], debugDescription: "decoded value is not a \(T.self)"))
                }
                return value
            }
            // Any other Decodable comes from JSON.
            guard let cell else {
                throw DecodingError.valueNotFound(T.self, .init(codingPath: [key], debugDescription: "column \"\(column.name)\" is NULL"))
            }
            do {
                return try decodeJSONCell(cell, type: column.dataType, isBinary: column.isBinary) as T
            } catch {
                throw error.located(in: column, at: index, decoding: T.self)
            }
        }

        private static func open<D: PostgresDecodable>(_ type: D.Type, _ cell: ByteBuffer?, _ column: RowDescription.Column, _ index: Int) throws
            -> D
        {
            do {
                return try D.decode(postgresCell: cell, type: column.dataType, isBinary: column.isBinary)
            } catch {
                throw error.located(in: column, at: index, decoding: D.self)
            }
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw DecodingError.typeMismatch(
                type, .init(codingPath: [key], debugDescription: "nested containers come from json columns; declare the property's type"))
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch(
                [Any].self, .init(codingPath: [key], debugDescription: "nested containers come from json columns; declare the property's type"))
        }

        func superDecoder() throws -> any Decoder { PostgresRowDecoder(row: row) }
        func superDecoder(forKey key: Key) throws -> any Decoder { PostgresRowDecoder(row: row) }
    }
}
