import Transport

/// SQL text with its parameters. Interpolated values become `$1`, `$2` … parameters, sent apart
/// from the SQL and never spliced into it:
///
///     try await connection.query("SELECT name FROM users WHERE id = \(id)")
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    /// The SQL, with `$n` placeholders.
    public var sql: String
    /// The parameters.
    public var bindings: PostgresBindings

    /// A query with explicit `$n` placeholders and their values.
    public init(unsafeSQL sql: String, bindings: PostgresBindings = PostgresBindings()) {
        self.sql = sql
        self.bindings = bindings
    }

    /// A query without parameters.
    public init(stringLiteral value: String) {
        self.sql = value
        self.bindings = PostgresBindings()
    }

    /// A query built by interpolation.
    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.bindings = stringInterpolation.bindings
    }

    /// Builds the SQL and the bindings together.
    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var bindings = PostgresBindings()

        /// Reserves room.
        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        /// Literal SQL.
        public mutating func appendLiteral(_ literal: String) { sql += literal }

        /// A parameter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            bindings.append(value)
            sql += "$\(bindings.count)"
        }

        /// A parameter that may be NULL.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            if let value { bindings.append(value) } else { bindings.appendNull(Value.postgresDataType) }
            sql += "$\(bindings.count)"
        }

        /// SQL spliced in as it is (identifiers you built yourself; never user input).
        public mutating func appendInterpolation(unescaped text: String) { sql += text }
    }
}

/// Encoded query parameters: each value's type and binary bytes, ready for Bind.
public struct PostgresBindings: Sendable, ExpressibleByArrayLiteral {
    /// The parameters' types, for Parse.
    public private(set) var dataTypes: [PostgresDataType] = []
    /// For each parameter, an Int32 length (-1 for NULL) and its bytes.
    private(set) var bytes = ByteBuffer()
    /// A value over 2 GiB was appended; such bindings cannot be sent.
    private(set) var isOversized = false

    /// No parameters.
    public init() {}

    /// Parameters from a list of values.
    public init(arrayLiteral elements: (any PostgresEncodable)?...) {
        for element in elements {
            if let element { appendExistential(element) } else { appendNull(.unknown) }
        }
    }

    /// The number of parameters.
    public var count: Int { dataTypes.count }

    /// Appends a value.
    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        dataTypes.append(Value.postgresDataType)
        if !encodeWithLength(value, into: &bytes) { isOversized = true }
    }

    /// Appends a value whose type is known only at run time.
    public mutating func appendExistential(_ value: any PostgresEncodable) {
        func open<Value: PostgresEncodable>(_ value: Value, into bindings: inout PostgresBindings) { bindings.append(value) }
        open(value, into: &self)
    }

    /// Appends a NULL of `type` (`.unknown` lets the server infer it).
    public mutating func appendNull(_ type: PostgresDataType = .unknown) {
        dataTypes.append(type)
        bytes.writeInteger(Int32(-1))
    }
}
