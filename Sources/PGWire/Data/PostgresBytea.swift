import Foundation
import Transport

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
