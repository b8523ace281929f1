import Foundation
import Transport

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
