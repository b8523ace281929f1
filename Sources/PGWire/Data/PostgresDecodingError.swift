import Foundation
import Transport

/// A cell that could not be decoded as asked. The row decoder adds the column, type and Swift type.
public struct PostgresDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var reason: String
    /// The column's name, when known.
    public var column: String?
    /// The column's index.
    public var columnIndex: Int?
    /// The column's type.
    public var dataType: PostgresDataType?
    /// The Swift type asked for.
    public var swiftType: String?

    /// Creates an error.
    public init(reason: String, column: String? = nil, columnIndex: Int? = nil, dataType: PostgresDataType? = nil, swiftType: String? = nil) {
        self.reason = reason
        self.column = column
        self.columnIndex = columnIndex
        self.dataType = dataType
        self.swiftType = swiftType
    }

    /// This error with the column it happened in.
    func located<T>(in column: RowDescription.Column, at index: Int, decoding type: T.Type) -> PostgresDecodingError {
        var detailed = self
        detailed.column = column.name
        detailed.columnIndex = index
        detailed.dataType = column.dataType
        detailed.swiftType = "\(T.self)"
        return detailed
    }

    @usableFromInline
    static func mismatch<T>(_ type: PostgresDataType, _ swift: T.Type) -> PostgresDecodingError {
        PostgresDecodingError(reason: "a \(type) cell cannot be decoded into \(swift)")
    }

    @usableFromInline
    static func malformed(_ type: PostgresDataType, _ detail: String) -> PostgresDecodingError {
        PostgresDecodingError(reason: "malformed \(type) value: \(detail)")
    }

    /// `column "name" (#2, int4) into String: reason`.
    public var description: String {
        var place: [String] = []
        if let column { place.append("column \"\(column)\"") }
        if let columnIndex { place.append("#\(columnIndex)") }
        if let dataType { place.append("type \(dataType) (OID \(dataType.rawValue))") }
        if let swiftType { place.append("into \(swiftType)") }
        return place.isEmpty ? reason : place.joined(separator: ", ") + ": " + reason
    }
}
