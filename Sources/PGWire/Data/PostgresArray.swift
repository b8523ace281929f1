import Foundation
import Transport

// MARK: - Arrays

/// A multi-dimensional array (`int[][]` …): the dimensions, their lower bounds, and the elements
/// in row-major order. One-dimensional arrays are plain Swift arrays.
public struct PostgresArray<Element: PostgresEncodable & PostgresDecodable>: Sendable, PostgresEncodable, PostgresDecodable {
    /// The length of each dimension.
    public var dimensions: [Int]
    /// Each dimension's lower bound (1 unless the array was built otherwise).
    public var lowerBounds: [Int]
    /// The elements, row-major.
    public var elements: [Element]

    /// Creates an array; nil unless the elements fill the dimensions exactly.
    public init?(dimensions: [Int], elements: [Element], lowerBounds: [Int]? = nil) {
        guard dimensions.allSatisfy({ $0 >= 0 }), dimensions.reduce(1, *) == elements.count || (dimensions.isEmpty && elements.isEmpty),
            dimensions.count <= 6
        else { return nil }
        self.dimensions = dimensions
        self.lowerBounds = lowerBounds ?? Array(repeating: 1, count: dimensions.count)
        self.elements = elements
    }

    /// A two-dimensional array from rows of equal length.
    public init?(rows: [[Element]]) {
        let width = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == width }) else { return nil }
        self.init(dimensions: rows.isEmpty ? [] : [rows.count, width], elements: rows.flatMap { $0 })
    }

    public static var postgresDataType: PostgresDataType { Element.postgresDataType.arrayType ?? .unknown }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(dimensions.count))
        buffer.writeInteger(Int32(elements.contains { $0.postgresIsNull } ? 1 : 0))
        buffer.writeInteger(Element.postgresDataType.rawValue)
        for (length, lower) in zip(dimensions, lowerBounds) {
            buffer.writeInteger(Int32(clamping: length))
            buffer.writeInteger(Int32(clamping: lower))
        }
        for element in elements { _ = encodeWithLength(element, into: &buffer) }
    }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        guard isBinary else { throw PostgresDecodingError(reason: "a text array is decoded as String; use the extended protocol") }
        var body = cell
        guard let count = body.readInteger(as: Int32.self), (0...6).contains(count), body.readInteger(as: Int32.self) != nil,
            let elementOID = body.readInteger(as: UInt32.self)
        else { throw PostgresDecodingError.malformed(type, "bad array header") }
        var dimensions: [Int] = []
        var lowerBounds: [Int] = []
        var total = 1
        for _ in 0..<count {
            guard let length = body.readInteger(as: Int32.self), let lower = body.readInteger(as: Int32.self), length >= 0 else {
                throw PostgresDecodingError.malformed(type, "bad dimension")
            }
            dimensions.append(Int(length))
            lowerBounds.append(Int(lower))
            total = total.multipliedReportingOverflow(by: Int(length)).partialValue
        }
        if count == 0 { total = 0 }
        // Each element takes at least its 4-byte length: a count beyond that is a lie.
        guard total >= 0, total <= body.readableBytes / 4 else { throw PostgresDecodingError.malformed(type, "\(total) elements announced") }
        let elementType = PostgresDataType(rawValue: elementOID)
        var elements: [Element] = []
        elements.reserveCapacity(total)
        for index in 0..<total {
            guard let length = body.readInteger(as: Int32.self) else { throw PostgresDecodingError.malformed(type, "element \(index) missing") }
            var cell: ByteBuffer?
            if length >= 0 {
                guard let slice = body.readSlice(count: Int(length)) else { throw PostgresDecodingError.malformed(type, "element \(index) truncated") }
                cell = slice
            }
            do {
                elements.append(try Element.decode(postgresCell: cell, type: elementType, isBinary: true))
            } catch {
                throw PostgresDecodingError(reason: "element \(index + 1): \(error.reason)")
            }
        }
        guard body.readableBytes == 0 else { throw PostgresDecodingError.malformed(type, "bytes after the last element") }
        self.dimensions = dimensions
        self.lowerBounds = lowerBounds
        self.elements = elements
    }
}

extension Array: PostgresEncodable where Element: PostgresEncodable & PostgresDecodable {
    public static var postgresDataType: PostgresDataType { PostgresArray<Element>.postgresDataType }

    /// A one-dimensional array (no dimension when empty, as the server writes `'{}'`).
    public func encode(into buffer: inout ByteBuffer) {
        PostgresArray(dimensions: isEmpty ? [] : [count], elements: self)?.encode(into: &buffer)
    }
}

extension Array: PostgresDecodable where Element: PostgresEncodable & PostgresDecodable {
    /// A one-dimensional (or empty) array; a multi-dimensional one needs ``PostgresArray``.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        let array = try PostgresArray<Element>(postgresCell: cell, type: type, isBinary: isBinary)
        guard array.dimensions.count <= 1 else {
            throw PostgresDecodingError(reason: "a \(array.dimensions.count)-dimensional array; decode it as PostgresArray")
        }
        self = array.elements
    }
}
