import Foundation
import Transport

/// A Swift value that can be sent as a query parameter, in binary format.
public protocol PostgresEncodable: Sendable {
    /// The type the server should read the value as.
    static var postgresDataType: PostgresDataType { get }
    /// Appends the value's binary representation (without the length prefix).
    func encode(into buffer: inout ByteBuffer)
    /// Whether the value is SQL NULL (only an empty Optional is; the default is false).
    var postgresIsNull: Bool { get }
}

/// A Swift value that a result cell can be decoded into, from binary or text format.
public protocol PostgresDecodable {
    /// Decodes a non-NULL cell of `type`.
    init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError)
    /// Decodes a cell that may be NULL; only optionals accept NULL.
    static func decode(postgresCell cell: ByteBuffer?, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) -> Self
}

extension PostgresDecodable {
    @inlinable
    public static func decode(postgresCell cell: ByteBuffer?, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) -> Self {
        guard let cell else { throw PostgresDecodingError(reason: "NULL cannot be decoded into \(Self.self); use an optional") }
        return try Self(postgresCell: cell, type: type, isBinary: isBinary)
    }
}

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

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        self = .some(try Wrapped(postgresCell: cell, type: type, isBinary: isBinary))
    }

    public static func decode(postgresCell cell: ByteBuffer?, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) -> Self {
        guard let cell else { return nil }
        return .some(try Wrapped(postgresCell: cell, type: type, isBinary: isBinary))
    }
}

// MARK: - Text helpers

extension ByteBuffer {
    /// The cell's bytes as UTF-8 text.
    @usableFromInline var cellText: String { String(decoding: readableBytesView, as: UTF8.self) }
}

// MARK: - Integers

/// Decodes any integer column (int2, int4, int8, oid) into `T`, checking the range.
@inlinable
func decodeInteger<T: FixedWidthInteger>(_ cell: ByteBuffer, _ type: PostgresDataType, _ isBinary: Bool) throws(PostgresDecodingError) -> T {
    guard isBinary else {
        guard let value = T(cell.cellText) else {
            throw PostgresDecodingError(reason: "\"\(cell.cellText.prefix(40))\" is not a \(T.self)")
        }
        return value
    }
    let wide: Int64
    switch (type, cell.readableBytes) {
    case (.int8, 8): wide = cell.getInteger(as: Int64.self) ?? 0
    case (.int4, 4): wide = Int64(cell.getInteger(as: Int32.self) ?? 0)
    case (.int2, 2): wide = Int64(cell.getInteger(as: Int16.self) ?? 0)
    case (.oid, 4), (.regproc, 4): wide = Int64(cell.getInteger(as: UInt32.self) ?? 0)
    case (.int8, _), (.int4, _), (.int2, _), (.oid, _), (.regproc, _):
        throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
    default:
        throw PostgresDecodingError.mismatch(type, T.self)
    }
    guard let value = T(exactly: wide) else {
        throw PostgresDecodingError(reason: "\(wide) does not fit in \(T.self)")
    }
    return value
}

/// The integer types: each encodes as its own PostgreSQL type and decodes from any integer
/// column whose value fits.
public protocol PostgresInteger: FixedWidthInteger, PostgresEncodable, PostgresDecodable {}

extension PostgresInteger {
    /// Decodes int2, int4, int8 and oid cells, binary or text, checking the range.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        self = try decodeInteger(cell, type, isBinary)
    }

    /// Writes the value big-endian in its own width.
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(self) }
}

extension Int64: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int8 }
}

extension Int: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int8 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(Int64(self)) }
}

extension Int32: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int4 }
}

extension Int16: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .int2 }
}

extension UInt32: PostgresInteger {
    public static var postgresDataType: PostgresDataType { .oid }
}

// MARK: - Bool, floating point

extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .bool }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(UInt8(self ? 1 : 0)) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .bool else { throw PostgresDecodingError.mismatch(type, Bool.self) }
        if isBinary {
            guard cell.readableBytes == 1, let byte = cell.getInteger(as: UInt8.self), byte <= 1 else {
                throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
            }
            self = byte == 1
        } else {
            switch cell.cellText {
            case "t": self = true
            case "f": self = false
            default: throw PostgresDecodingError.malformed(type, "\"\(cell.cellText.prefix(10))\"")
            }
        }
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .float8 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(bitPattern) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        if !isBinary {
            guard type == .float8 || type == .float4 || type == .numeric || type == .int2 || type == .int4 || type == .int8,
                let value = Double(cell.cellText.replacingOccurrences(of: "Infinity", with: "inf"))
            else { throw PostgresDecodingError(reason: "\"\(cell.cellText.prefix(40))\" is not a Double") }
            self = value
            return
        }
        switch (type, cell.readableBytes) {
        case (.float8, 8): self = Double(bitPattern: cell.getInteger(as: UInt64.self) ?? 0)
        case (.float4, 4): self = Double(Float(bitPattern: cell.getInteger(as: UInt32.self) ?? 0))
        case (.int2, _), (.int4, _), (.int8, _): self = Double(try decodeInteger(cell, type, isBinary) as Int64)
        case (.numeric, _):
            let text = try PostgresNumeric.decode(cell).description
            guard let value = Double(text) else { throw PostgresDecodingError.malformed(type, text) }
            self = value
        case (.float8, _), (.float4, _): throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        default: throw PostgresDecodingError.mismatch(type, Double.self)
        }
    }
}

extension Float: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .float4 }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeInteger(bitPattern) }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        if isBinary, type == .float4 {
            guard cell.readableBytes == 4 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
            self = Float(bitPattern: cell.getInteger(as: UInt32.self) ?? 0)
        } else {
            self = Float(try Double(postgresCell: cell, type: type, isBinary: isBinary))
        }
    }
}

// MARK: - Text and bytes

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .text }
    public func encode(into buffer: inout ByteBuffer) { _ = buffer.writeString(self) }
    /// Text types decode as they are; any other type decodes from its text form when the cell is
    /// text, and numeric and uuid from binary too.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        switch type {
        case .text, .varchar, .bpchar, .name, .unknown, .json, .xml, .char:
            self = cell.cellText
        case .jsonb where isBinary:
            guard cell.getInteger(as: UInt8.self) == 1 else { throw PostgresDecodingError.malformed(type, "unknown jsonb version") }
            self = String(decoding: cell.readableBytesView.dropFirst(), as: UTF8.self)
        case .numeric where isBinary:
            self = try PostgresNumeric.decode(cell).description
        case .uuid where isBinary:
            self = try UUID(postgresCell: cell, type: type, isBinary: true).uuidString.lowercased()
        default:
            // Enums (their own OIDs) send their label; other built-ins need their own decoder.
            guard !isBinary || !type.isBuiltin else { throw PostgresDecodingError.mismatch(type, String.self) }
            self = cell.cellText
        }
    }
}

extension ByteBuffer: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .bytea }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeBuffer(self) }
    /// The cell's raw bytes, whatever the type: binary cells as sent, text cells as their text
    /// (bytea text is hex-decoded).
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        if !isBinary, type == .bytea {
            self = ByteBuffer(bytes: try PostgresBytea.decodeText(cell))
        } else {
            self = cell
        }
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .bytea }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeBytes(self) }
    /// The cell's bytes, as ``ByteBuffer``'s decoding gives them.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        self = Data(try ByteBuffer(postgresCell: cell, type: type, isBinary: isBinary).readableBytesView)
    }
}

/// bytea's text form: `\x` and hex digits (the escape form of `bytea_output = escape` too).
enum PostgresBytea {
    static func decodeText(_ cell: ByteBuffer) throws(PostgresDecodingError) -> [UInt8] {
        let bytes = cell.readableBytesView
        if bytes.starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "x")]) {
            var out: [UInt8] = []
            out.reserveCapacity((bytes.count - 2) / 2)
            var high: UInt8?
            for byte in bytes.dropFirst(2) {
                guard let digit = ASCIIHex.value(byte) else { throw PostgresDecodingError.malformed(.bytea, "bad hex digit") }
                if let value = high {
                    out.append(value << 4 | digit)
                    high = nil
                } else {
                    high = digit
                }
            }
            guard high == nil else { throw PostgresDecodingError.malformed(.bytea, "odd number of hex digits") }
            return out
        }
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                if index + 1 < bytes.endIndex, bytes[index + 1] == UInt8(ascii: "\\") {
                    out.append(byte)
                    index += 2
                    continue
                }
                guard index + 3 < bytes.endIndex else {
                    throw PostgresDecodingError.malformed(.bytea, "truncated escape")
                }
                var value: UInt8 = 0
                for offset in 1...3 {
                    let digit = bytes[index + offset]
                    guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit) else {
                        throw PostgresDecodingError.malformed(.bytea, "bad octal escape")
                    }
                    value = value &* 8 &+ (digit - UInt8(ascii: "0"))
                }
                out.append(value)
                index += 4
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }
}

// MARK: - UUID and timestamps

extension UUID: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .uuid }
    public func encode(into buffer: inout ByteBuffer) {
        withUnsafeBytes(of: uuid) { buffer.writeBytes($0) }
    }
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard type == .uuid || type == .text || type == .varchar else { throw PostgresDecodingError.mismatch(type, UUID.self) }
        if isBinary, type == .uuid {
            guard cell.readableBytes == 16 else { throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes") }
            var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &raw) { target in
                for (index, byte) in cell.readableBytesView.enumerated() { target[index] = byte }
            }
            self = UUID(uuid: raw)
        } else {
            guard let value = UUID(uuidString: cell.cellText) else { throw PostgresDecodingError.malformed(type, "\"\(cell.cellText.prefix(40))\"") }
            self = value
        }
    }
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01 00:00:00 UTC.
enum PostgresEpoch {
    static let epochOffsetSeconds: Double = 946_684_800
    static let epochOffsetDays = 10_957
}

extension Date: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .timestamptz }
    public func encode(into buffer: inout ByteBuffer) {
        let microseconds = ((timeIntervalSince1970 - PostgresEpoch.epochOffsetSeconds) * 1_000_000).rounded()
        buffer.writeInteger(Int64(exactly: microseconds) ?? (microseconds < 0 ? Int64.min + 1 : Int64.max - 1))
    }
    /// timestamptz and timestamp (read as UTC) in microseconds, date at midnight UTC.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard isBinary else { throw PostgresDecodingError(reason: "a text \(type) cannot be decoded into Date; use the extended protocol") }
        switch (type, cell.readableBytes) {
        case (.timestamptz, 8), (.timestamp, 8):
            let microseconds = cell.getInteger(as: Int64.self) ?? 0
            if microseconds == .max { self = .distantFuture; return }
            if microseconds == .min { self = .distantPast; return }
            let seconds = microseconds.quotientAndRemainder(dividingBy: 1_000_000)
            self = Date(timeIntervalSince1970: PostgresEpoch.epochOffsetSeconds + Double(seconds.quotient) + Double(seconds.remainder) / 1_000_000)
        case (.date, 4):
            let days = cell.getInteger(as: Int32.self) ?? 0
            if days == .max { self = .distantFuture; return }
            if days == .min { self = .distantPast; return }
            self = Date(timeIntervalSince1970: Double(Int(days) + PostgresEpoch.epochOffsetDays) * 86_400)
        case (.timestamptz, _), (.timestamp, _), (.date, _):
            throw PostgresDecodingError.malformed(type, "\(cell.readableBytes) bytes")
        default:
            throw PostgresDecodingError.mismatch(type, Date.self)
        }
    }
}
