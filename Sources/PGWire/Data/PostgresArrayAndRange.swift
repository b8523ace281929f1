import Foundation
import Transport

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

// MARK: - Ranges

/// A type that can be a range's bound, with the range type it makes.
public protocol PostgresRangeBound: PostgresEncodable, PostgresDecodable, Comparable {
    /// The range type (`int4range` for Int32 …).
    static var postgresRangeDataType: PostgresDataType { get }
}

extension Int32: PostgresRangeBound { public static var postgresRangeDataType: PostgresDataType { .int4range } }
extension Int64: PostgresRangeBound { public static var postgresRangeDataType: PostgresDataType { .int8range } }
extension Int: PostgresRangeBound { public static var postgresRangeDataType: PostgresDataType { .int8range } }
extension Decimal: PostgresRangeBound { public static var postgresRangeDataType: PostgresDataType { .numrange } }
extension Date: PostgresRangeBound { public static var postgresRangeDataType: PostgresDataType { .tstzrange } }
extension PostgresDate: Comparable, PostgresRangeBound {
    public static var postgresRangeDataType: PostgresDataType { .daterange }
    public static func < (lhs: PostgresDate, rhs: PostgresDate) -> Bool { lhs.daysSince2000 < rhs.daysSince2000 }
}

/// The flag bits of a range's binary form.
enum RangeFlag {
    static let empty: UInt8 = 0x01
    static let lowerInclusive: UInt8 = 0x02
    static let upperInclusive: UInt8 = 0x04
    static let lowerInfinite: UInt8 = 0x08
    static let upperInfinite: UInt8 = 0x10
}

/// A range (`int4range`, `int8range`, `numrange`, `tsrange`, `tstzrange`, `daterange`): bounds
/// that may be absent (unbounded), inclusive or exclusive, or the empty range.
public struct PostgresRange<Bound: PostgresRangeBound & Sendable>: Sendable, PostgresEncodable, PostgresDecodable {
    /// The lower bound (nil: unbounded below).
    public var lower: Bound?
    /// The upper bound (nil: unbounded above).
    public var upper: Bound?
    /// Whether `lower` belongs to the range.
    public var isLowerInclusive: Bool
    /// Whether `upper` belongs to the range.
    public var isUpperInclusive: Bool
    /// The empty range (bounds ignored).
    public var isEmpty: Bool

    /// Creates a range; `[lower, upper)` by default, as the server normalizes discrete ranges.
    public init(lower: Bound?, upper: Bound?, isLowerInclusive: Bool = true, isUpperInclusive: Bool = false) {
        self.lower = lower
        self.upper = upper
        self.isLowerInclusive = lower != nil && isLowerInclusive
        self.isUpperInclusive = upper != nil && isUpperInclusive
        self.isEmpty = false
    }

    /// The empty range.
    public static var empty: PostgresRange {
        var range = PostgresRange(lower: nil, upper: nil)
        range.isEmpty = true
        return range
    }

    /// A half-open Swift range.
    public init(_ range: Range<Bound>) { self.init(lower: range.lowerBound, upper: range.upperBound) }

    /// A closed Swift range.
    public init(_ range: ClosedRange<Bound>) {
        self.init(lower: range.lowerBound, upper: range.upperBound, isLowerInclusive: true, isUpperInclusive: true)
    }

    public static var postgresDataType: PostgresDataType { Bound.postgresRangeDataType }

    public func encode(into buffer: inout ByteBuffer) {
        if isEmpty {
            buffer.writeInteger(RangeFlag.empty)
            return
        }
        var flags: UInt8 = 0
        if lower == nil { flags |= RangeFlag.lowerInfinite } else if isLowerInclusive { flags |= RangeFlag.lowerInclusive }
        if upper == nil { flags |= RangeFlag.upperInfinite } else if isUpperInclusive { flags |= RangeFlag.upperInclusive }
        buffer.writeInteger(flags)
        if let lower { _ = encodeWithLength(lower, into: &buffer) }
        if let upper { _ = encodeWithLength(upper, into: &buffer) }
    }

    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        let elementType: PostgresDataType
        switch type {
        case .int4range: elementType = .int4
        case .int8range: elementType = .int8
        case .numrange: elementType = .numeric
        case .tsrange: elementType = .timestamp
        case .tstzrange: elementType = .timestamptz
        case .daterange: elementType = .date
        default: throw PostgresDecodingError.mismatch(type, PostgresRange<Bound>.self)
        }
        guard isBinary else { throw PostgresDecodingError(reason: "a text range is decoded as String; use the extended protocol") }
        var body = cell
        guard let flags = body.readInteger(as: UInt8.self) else { throw PostgresDecodingError.malformed(type, "no flags") }
        if flags & RangeFlag.empty != 0 {
            self = .empty
            return
        }
        func bound(_ present: Bool) throws(PostgresDecodingError) -> Bound? {
            guard present else { return nil }
            guard let length = body.readInteger(as: Int32.self), length >= 0, let slice = body.readSlice(count: Int(length)) else {
                throw PostgresDecodingError.malformed(type, "truncated bound")
            }
            return try Bound(postgresCell: slice, type: elementType, isBinary: true)
        }
        let lower = try bound(flags & RangeFlag.lowerInfinite == 0)
        let upper = try bound(flags & RangeFlag.upperInfinite == 0)
        guard body.readableBytes == 0 else { throw PostgresDecodingError.malformed(type, "bytes after the bounds") }
        self.init(
            lower: lower, upper: upper, isLowerInclusive: flags & RangeFlag.lowerInclusive != 0, isUpperInclusive: flags & RangeFlag.upperInclusive != 0)
    }
}
