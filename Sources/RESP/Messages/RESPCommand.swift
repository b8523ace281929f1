import Transport

/// Encodes commands as RESP arrays of bulk strings; keys and values are binary-safe.
public enum RESPCommandEncoder {
    /// Appends `*N\r\n` and one `$len\r\n<bytes>\r\n` per argument to `buffer`.
    public static func encode(_ arguments: [RESPArgument], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        writeDecimal(arguments.count, into: &buffer)
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            switch argument {
            case .string(let string):
                var copy = string
                copy.withUTF8 { utf8 in
                    writeDecimal(utf8.count, into: &buffer)
                    buffer.writeBytes(utf8)
                }
            case .bytes(let bytes):
                writeDecimal(bytes.readableBytes, into: &buffer)
                buffer.writeBuffer(bytes)
            case .integer(let integer):
                writeDecimal(decimalLength(integer), into: &buffer)
                buffer.writeDecimal(integer)
            }
            buffer.writeInteger(UInt16(0x0D0A))
        }
    }

    /// Writes a non-negative count followed by CRLF.
    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        buffer.writeDecimal(Int64(value))
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// How many characters `value` takes in decimal, sign included.
    static func decimalLength(_ value: Int64) -> Int {
        var magnitude = value.magnitude
        var length = value < 0 ? 2 : 1
        while magnitude >= 10 {
            magnitude /= 10
            length += 1
        }
        return length
    }
}

/// One argument of a command.
public enum RESPArgument: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    /// UTF-8 text.
    case string(String)
    /// Raw bytes (binary-safe).
    case bytes(ByteBuffer)
    /// An integer, sent as its decimal text.
    case integer(Int64)

    /// A string literal argument.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer literal argument.
    public init(integerLiteral value: Int64) { self = .integer(value) }
}
