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

// MARK: - NULL inside containers

extension PostgresEncodable {
    /// Not NULL: only an empty Optional is.
    public var postgresIsNull: Bool { false }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresDataType: PostgresDataType { Wrapped.postgresDataType }
    public var postgresIsNull: Bool { self == nil }
    public func encode(into buffer: inout ByteBuffer) { self?.encode(into: &buffer) }
}

/// Writes a value with its Int32 length prefix, or -1 for NULL.
func encodeWithLength<Value: PostgresEncodable>(_ value: Value, into buffer: inout ByteBuffer) -> Bool {
    if value.postgresIsNull {
        buffer.writeInteger(Int32(-1))
        return true
    }
    let mark = buffer.beginLengthPrefix(Int32.self)
    value.encode(into: &buffer)
    do {
        try buffer.finishLengthPrefix(mark, includingPrefix: false)
        return true
    } catch {
        return false
    }
}
