import Transport

/// One result row: its cells and the columns they belong to. Cells are decoded on demand.
public struct PostgresRow: Sendable {
    /// The columns.
    public let columns: [RowDescription.Column]
    /// The raw cells.
    public let data: DataRow

    /// Creates a row.
    public init(columns: [RowDescription.Column], data: DataRow) {
        self.columns = columns
        self.data = data
    }

    /// The raw cell at `column` (nil for NULL).
    public subscript(column: Int) -> ByteBuffer? { data[column] }

    /// Decodes the cell at `column` as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column: Int) throws(PostgresDecodingError) -> T {
        guard column >= 0, column < columns.count, column < data.columnCount else {
            throw PostgresDecodingError(reason: "no column \(column); the row has \(columns.count)", swiftType: "\(T.self)")
        }
        return try decodeCell(data[column], at: column, as: T.self)
    }

    /// Decodes the cell of the column named `name` as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, column name: String) throws(PostgresDecodingError) -> T {
        guard let index = columns.firstIndex(where: { $0.name == name }) else {
            throw PostgresDecodingError(reason: "no column named \"\(name)\"", column: name, swiftType: "\(T.self)")
        }
        return try decode(T.self, column: index)
    }

    /// Decodes the leading cells, in order, as a tuple: `row.decode((Int, String, Date).self)`.
    public func decode<each T: PostgresDecodable>(_ types: (repeat each T).Type) throws -> (repeat each T) {
        var cells = data.makeIterator()
        var index = 0
        func next<V: PostgresDecodable>(_ type: V.Type) throws -> V {
            defer { index += 1 }
            guard index < columns.count, let cell = cells.next() else {
                throw PostgresDecodingError(reason: "the row has only \(columns.count) columns", columnIndex: index, swiftType: "\(V.self)")
            }
            return try decodeCell(cell, at: index, as: V.self)
        }
        return (repeat try next((each T).self))
    }

    @inline(__always)
    private func decodeCell<T: PostgresDecodable>(_ cell: ByteBuffer?, at index: Int, as type: T.Type) throws(PostgresDecodingError) -> T {
        let column = columns[index]
        do {
            return try T.decode(postgresCell: cell, type: column.dataType, isBinary: column.isBinary)
        } catch {
            throw error.located(in: column, at: index, decoding: T.self)
        }
    }
}

/// The complete outcome of one statement: its rows (possibly none) and its command tag.
public struct PostgresQueryResult: Sendable {
    /// The columns (empty for statements that return no rows).
    public var columns: [RowDescription.Column]
    /// The rows.
    public var rows: [PostgresRow]
    /// The command tag: `SELECT 3`, `INSERT 0 1`, `CREATE TABLE` … (empty for an empty query).
    public var commandTag: String

    /// The number of rows the command affected or returned, from its tag.
    public var affectedRows: Int? {
        guard let last = commandTag.split(separator: " ").last else { return nil }
        return Int(last)
    }
}
