import Transport

/// A five-character SQLSTATE code. Named constants for every code the server defines are in
/// `Generated/SQLState+Codes.swift`.
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code, such as `23505`.
    public let rawValue: String

    /// Wraps a code.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// The class: the first two characters (`23` for integrity constraint violations).
    public var errorClass: Substring { rawValue.prefix(2) }

    /// The code.
    public var description: String { rawValue }
}

/// The fields of an ErrorResponse ('E') or NoticeResponse ('N').
public struct PostgresDiagnostics: Sendable, Equatable, CustomStringConvertible {
    /// A field's type byte, with its ASCII letter.
    public enum Field: UInt8, Sendable, CaseIterable {
        /// S: ERROR, FATAL, PANIC, WARNING, NOTICE … possibly translated.
        case localizedSeverity = 0x53
        /// V: the severity, never translated (9.6+).
        case severity = 0x56
        /// C: the SQLSTATE code.
        case sqlState = 0x43
        /// M: the primary message.
        case message = 0x4D
        /// D: detail.
        case detail = 0x44
        /// H: a hint.
        case hint = 0x48
        /// P: the cursor position in the query string (1-based, in characters).
        case position = 0x50
        /// p: the position in an internally generated query.
        case internalPosition = 0x70
        /// q: the internally generated query.
        case internalQuery = 0x71
        /// W: the context (a call stack of PL functions …).
        case context = 0x57
        /// s: schema name.
        case schemaName = 0x73
        /// t: table name.
        case tableName = 0x74
        /// c: column name.
        case columnName = 0x63
        /// d: data type name.
        case dataTypeName = 0x64
        /// n: constraint name.
        case constraintName = 0x6E
        /// F: the server source file.
        case file = 0x46
        /// L: the server source line.
        case line = 0x4C
        /// R: the server routine.
        case routine = 0x52
    }

    /// The fields the server sent (unknown field types are dropped, as the protocol asks).
    public var fields: [Field: String]

    /// Creates diagnostics from fields.
    public init(fields: [Field: String]) {
        self.fields = fields
    }

    /// A field's value.
    public subscript(field: Field) -> String? { fields[field] }

    /// Whether the server ends the session after this error (FATAL or PANIC).
    public var endsSession: Bool { severity == "FATAL" || severity == "PANIC" }

    /// The untranslated severity when the server sent it, else the localized one.
    public var severity: String { fields[.severity] ?? fields[.localizedSeverity] ?? "ERROR" }
    /// The SQLSTATE (`XX000`, internal error, when the server sent none).
    public var sqlState: SQLState { SQLState(rawValue: fields[.sqlState] ?? "XX000") }
    /// The primary message.
    public var message: String { fields[.message] ?? "" }
    /// The cursor position in the query, 1-based in characters.
    public var position: Int? { fields[.position].flatMap { Int($0) } }

    /// `SEVERITY: message (SQLSTATE 12345)`, with detail and hint when present.
    public var description: String {
        var text = "\(severity): \(message) (SQLSTATE \(sqlState.rawValue))"
        if let detail = fields[.detail] { text += "; detail: \(detail)" }
        if let hint = fields[.hint] { text += "; hint: \(hint)" }
        return text
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> PostgresDiagnostics {
        var fields: [Field: String] = [:]
        while true {
            let type = try body.readBody(UInt8.self, "field type")
            if type == 0 { break }
            let value = try body.readBodyCString("field value")
            if let field = Field(rawValue: type) { fields[field] = value }
        }
        return PostgresDiagnostics(fields: fields)
    }
}
