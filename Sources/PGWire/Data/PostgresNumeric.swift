import Foundation
import Transport

/// numeric's binary form: digit count, weight, sign, display scale, then base-10000 digits.
enum PostgresNumeric {
    /// The exact decimal text of a binary numeric (`NaN`, `Infinity`, `-Infinity` included).
    static func decode(_ cell: ByteBuffer) throws(PostgresDecodingError) -> NumericText {
        var body = cell
        guard let count = body.readInteger(as: Int16.self), let weight = body.readInteger(as: Int16.self),
            let sign = body.readInteger(as: UInt16.self), let scale = body.readInteger(as: Int16.self),
            count >= 0, scale >= 0, body.readableBytes == Int(count) * 2
        else { throw PostgresDecodingError.malformed(.numeric, "bad header") }
        switch sign {
        case 0xC000: return NumericText(description: "NaN")
        case 0xD000: return NumericText(description: "Infinity")
        case 0xF000: return NumericText(description: "-Infinity")
        case 0x0000, 0x4000: break
        default: throw PostgresDecodingError.malformed(.numeric, "sign 0x\(String(sign, radix: 16))")
        }
        var digits: [Int16] = []
        for _ in 0..<count {
            guard let digit = body.readInteger(as: Int16.self), (0..<10000).contains(digit) else {
                throw PostgresDecodingError.malformed(.numeric, "digit out of range")
            }
            digits.append(digit)
        }
        // Integer part: groups 0...weight; fraction: the groups after, to `scale` decimal digits.
        var text = sign == 0x4000 ? "-" : ""
        if weight < 0 {
            text += "0"
        } else {
            for group in 0...Int(weight) {
                let digit = group < digits.count ? digits[group] : 0
                text += group == 0 ? String(digit) : pad4(digit)
            }
        }
        if scale > 0 {
            var fraction = ""
            var group = Int(weight) + 1
            while fraction.count < Int(scale) {
                let digit = group >= 0 && group < digits.count ? digits[group] : 0
                fraction += pad4(digit)
                group += 1
            }
            text += "." + fraction.prefix(Int(scale))
        }
        if text == "-0" || (text.hasPrefix("-") && text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." })) { text.removeFirst() }
        return NumericText(description: text)
    }

    private static func pad4(_ digit: Int16) -> String {
        let text = String(digit)
        return String(repeating: "0", count: 4 - text.count) + text
    }

    struct NumericText: CustomStringConvertible {
        let description: String
    }
}

extension PostgresNumeric {
    /// Binary numeric from decimal text: an optional sign, digits, an optional fraction and an
    /// optional exponent (`-12.50`, `1e-3`), or `NaN` / `Infinity` / `-Infinity`.
    static func encode(_ text: String, into buffer: inout ByteBuffer) -> Bool {
        switch text {
        case "NaN": return header(count: 0, weight: 0, sign: 0xC000, scale: 0, &buffer)
        case "Infinity", "inf": return header(count: 0, weight: 0, sign: 0xD000, scale: 0, &buffer)
        case "-Infinity", "-inf": return header(count: 0, weight: 0, sign: 0xF000, scale: 0, &buffer)
        default: break
        }
        var characters = Substring(text)
        var negative = false
        if characters.first == "-" || characters.first == "+" {
            negative = characters.first == "-"
            characters = characters.dropFirst()
        }
        var exponent = 0
        if let e = characters.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let value = Int(characters[characters.index(after: e)...]), abs(value) < 100_000 else { return false }
            exponent = value
            characters = characters[..<e]
        }
        let parts = characters.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        var integer = Array(parts[0].utf8)
        var fraction = parts.count > 1 ? Array(parts[1].utf8) : []
        guard !(integer.isEmpty && fraction.isEmpty),
            (integer + fraction).allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return false }
        // Apply the exponent by moving the decimal point.
        if exponent > 0 {
            let moved = min(exponent, fraction.count)
            integer += fraction.prefix(moved)
            fraction.removeFirst(moved)
            integer += [UInt8](repeating: UInt8(ascii: "0"), count: exponent - moved)
        } else if exponent < 0 {
            let moved = min(-exponent, integer.count)
            fraction = Array(integer.suffix(moved)) + fraction
            integer.removeLast(moved)
            fraction = [UInt8](repeating: UInt8(ascii: "0"), count: -exponent - moved) + fraction
        }
        let scale = fraction.count
        guard scale <= 16383 else { return false }
        let integerPadded = [UInt8](repeating: UInt8(ascii: "0"), count: (4 - integer.count % 4) % 4) + integer
        let fractionPadded = fraction + [UInt8](repeating: UInt8(ascii: "0"), count: (4 - fraction.count % 4) % 4)
        func groups(_ digits: [UInt8]) -> [Int16] {
            stride(from: 0, to: digits.count, by: 4).map { start in
                digits[start..<start + 4].reduce(Int16(0)) { $0 * 10 + Int16($1 - UInt8(ascii: "0")) }
            }
        }
        var all = groups(integerPadded) + groups(fractionPadded)
        var weight = integerPadded.count / 4 - 1
        while let first = all.first, first == 0 {
            all.removeFirst()
            weight -= 1
        }
        while let last = all.last, last == 0 { all.removeLast() }
        if all.isEmpty { weight = 0 }
        guard all.count <= Int(Int16.max), weight >= Int(Int16.min), weight <= Int(Int16.max) else { return false }
        guard header(count: all.count, weight: weight, sign: negative && !all.isEmpty ? 0x4000 : 0, scale: scale, &buffer) else {
            return false
        }
        for group in all { buffer.writeInteger(group) }
        return true
    }

    private static func header(count: Int, weight: Int, sign: UInt16, scale: Int, _ buffer: inout ByteBuffer) -> Bool {
        buffer.writeInteger(Int16(count))
        buffer.writeInteger(Int16(weight))
        buffer.writeInteger(sign)
        buffer.writeInteger(Int16(scale))
        return true
    }
}

extension Decimal: PostgresEncodable, PostgresDecodable {
    public static var postgresDataType: PostgresDataType { .numeric }

    /// Exact: Decimal's digits become numeric's.
    public func encode(into buffer: inout ByteBuffer) {
        let text = isNaN ? "NaN" : description
        if !PostgresNumeric.encode(text, into: &buffer) { _ = PostgresNumeric.encode("NaN", into: &buffer) }
    }

    /// numeric (binary or text) and the integer and float types; a numeric with more significant
    /// digits than Decimal keeps (38) is refused rather than rounded: decode it as String.
    public init(postgresCell cell: ByteBuffer, type: PostgresDataType, isBinary: Bool) throws(PostgresDecodingError) {
        let text: String
        switch type {
        case .numeric:
            text = isBinary ? try PostgresNumeric.decode(cell).description : cell.cellText
        case .int2, .int4, .int8:
            text = String(try decodeInteger(cell, type, isBinary) as Int64)
        case .float4, .float8:
            self = Decimal(try Double(postgresCell: cell, type: type, isBinary: isBinary))
            return
        default:
            throw PostgresDecodingError.mismatch(type, Decimal.self)
        }
        if text == "NaN" {
            self = .nan
            return
        }
        let digits = text.filter(\.isNumber).drop(while: { $0 == "0" })
        let significant = digits.count - digits.reversed().prefix(while: { $0 == "0" }).count
        guard significant <= 38, let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw PostgresDecodingError(reason: "numeric \(text.prefix(60)) does not fit in Decimal without loss; decode it as String")
        }
        self = value
    }
}
