import Transport

/// 'T': the columns of the rows that follow.
public struct RowDescription: Sendable, Equatable {
    /// One column.
    public struct Column: Sendable, Equatable {
        /// The column's name (or `?column?`).
        public var name: String
        /// The table's OID, or 0 when the column is not a plain table column.
        public var tableOID: UInt32
        /// The column's attribute number in that table, or 0.
        public var columnAttributeNumber: Int16
        /// The data type's OID.
        public var dataType: PostgresDataType
        /// The type's size (`pg_type.typlen`); negative for variable width.
        public var dataTypeSize: Int16
        /// The type modifier (`pg_attribute.atttypmod`), such as a varchar's length.
        public var dataTypeModifier: Int32
        /// Whether values come in binary (otherwise text).
        public var isBinary: Bool

        /// Creates a column description.
        public init(
            name: String, tableOID: UInt32 = 0, columnAttributeNumber: Int16 = 0, dataType: PostgresDataType,
            dataTypeSize: Int16 = -1, dataTypeModifier: Int32 = -1, isBinary: Bool
        ) {
            self.name = name
            self.tableOID = tableOID
            self.columnAttributeNumber = columnAttributeNumber
            self.dataType = dataType
            self.dataTypeSize = dataTypeSize
            self.dataTypeModifier = dataTypeModifier
            self.isBinary = isBinary
        }
    }

    /// The columns, in order.
    public var columns: [Column]

    /// Creates a row description.
    public init(columns: [Column]) {
        self.columns = columns
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> RowDescription {
        // A column takes at least 19 bytes: an empty name's NUL and 18 bytes of fixed fields.
        let count = try body.readBodyCount("column count", minimumBytesEach: 19)
        var columns: [Column] = []
        columns.reserveCapacity(count)
        for _ in 0..<count {
            let name = try body.readBodyCString("column name")
            let table = try body.readBody(UInt32.self, "table OID")
            let attribute = try body.readBody(Int16.self, "attribute number")
            let type = try body.readBody(UInt32.self, "type OID")
            let size = try body.readBody(Int16.self, "type size")
            let modifier = try body.readBody(Int32.self, "type modifier")
            let format = try body.readBody(Int16.self, "format code")
            guard format == 0 || format == 1 else { throw MalformedMessage("format code \(format) is neither 0 nor 1") }
            columns.append(
                Column(
                    name: name, tableOID: table, columnAttributeNumber: attribute, dataType: PostgresDataType(type),
                    dataTypeSize: size, dataTypeModifier: modifier, isBinary: format == 1))
        }
        return RowDescription(columns: columns)
    }
}

/// 'D': one row's cells, kept as one slice of the read buffer and walked on demand.
public struct DataRow: Sendable, Equatable, Sequence {
    /// Number of columns.
    public let columnCount: Int
    /// The cells: for each, an Int32 length (-1 for NULL) and that many bytes. Validated on decode.
    @usableFromInline let bytes: ByteBuffer

    /// Creates a row from cells (nil is NULL); for tests and fake servers.
    public init(cells: [ByteBuffer?]) {
        var bytes = ByteBuffer()
        for cell in cells {
            if let cell {
                bytes.writeInteger(Int32(cell.readableBytes))
                bytes.writeBuffer(cell)
            } else {
                bytes.writeInteger(Int32(-1))
            }
        }
        self.columnCount = cells.count
        self.bytes = bytes
    }

    private init(columnCount: Int, bytes: ByteBuffer) {
        self.columnCount = columnCount
        self.bytes = bytes
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> DataRow {
        let count = try body.readBodyCount("column count", minimumBytesEach: 4)
        let start = body
        for column in 0..<count {
            let length = try body.readBody(Int32.self, "cell length")
            if length == -1 { continue }
            guard length >= 0, Int(length) <= body.readableBytes else {
                throw MalformedMessage("cell \(column) announces \(length) bytes; \(body.readableBytes) remain")
            }
            body.moveReaderIndex(forwardBy: Int(length))
        }
        guard let cells = start.getSlice(at: 0, count: start.readableBytes - body.readableBytes) else {
            throw MalformedMessage("row cells out of range")
        }
        return DataRow(columnCount: count, bytes: cells)
    }

    /// Walks the cells in order: nil for NULL.
    public struct Iterator: IteratorProtocol {
        @usableFromInline var remaining: ByteBuffer

        @inlinable
        public mutating func next() -> ByteBuffer?? {
            guard let length = remaining.readInteger(as: Int32.self) else { return .none }
            if length < 0 { return .some(nil) }
            return .some(remaining.readSlice(count: Int(length)))
        }
    }

    /// An iterator over the cells.
    public func makeIterator() -> Iterator { Iterator(remaining: bytes) }

    /// The cell at `column` (nil for NULL); walks the earlier cells' lengths.
    public subscript(column: Int) -> ByteBuffer? {
        var iterator = makeIterator()
        for _ in 0..<column { _ = iterator.next() }
        return iterator.next() ?? nil
    }
}
