import Transport

/// Encodes commands as RESP arrays of bulk strings; keys and values are binary-safe.
public enum RESPCommandEncoder {
    /// Appends `*N\r\n` and one `$len\r\n<bytes>\r\n` per argument to `buffer`: the size is
    /// summed first, then the command is stored into one reserved region (one capacity check, no
    /// per-field bookkeeping: the encoder is on the hot path of every command and pipeline).
    public static func encode(_ arguments: [RESPArgument], into buffer: inout ByteBuffer) {
        arguments.withUnsafeBufferPointer { encode($0, into: &buffer) }
    }

    /// The same over borrowed arguments: reading them in place costs no reference counting per
    /// argument (iterating the array would copy each, retaining its string or buffer).
    static func encode(_ arguments: UnsafeBufferPointer<RESPArgument>, into buffer: inout ByteBuffer) {
        var size = 3 + decimalLength(Int64(arguments.count))
        for index in arguments.indices {
            let length = arguments[index].encodedLength
            size += 5 + decimalLength(Int64(length)) + length
        }
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { region -> Int in
            guard let base = region.baseAddress else { return 0 }
            // A raw cursor and inlined helpers: nothing captured, so no exclusivity checks.
            var cursor = base
            cursor.storeBytes(of: UInt8(ascii: "*"), as: UInt8.self)
            cursor += 1
            putCount(arguments.count, &cursor)
            for index in arguments.indices {
                cursor.storeBytes(of: UInt8(ascii: "$"), as: UInt8.self)
                cursor += 1
                switch arguments[index] {
                case .string(let string):
                    // A native string lends its UTF-8 in place (borrowed: no retain); only a
                    // bridged one is copied.
                    if string.utf8.withContiguousStorageIfAvailable({ putBytes(UnsafeRawBufferPointer($0), &cursor) }) == nil {
                        var copy = string
                        copy.withUTF8 { putBytes(UnsafeRawBufferPointer($0), &cursor) }
                    }
                case .bytes(let bytes):
                    bytes.withUnsafeReadableBytes { putBytes($0, &cursor) }
                case .integer(let integer):
                    putCount(decimalLength(integer), &cursor)
                    if integer < 0 {
                        cursor.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
                        cursor += 1
                    }
                    cursor += ASCIIDecimal.write(integer.magnitude, to: cursor)
                }
                cursor.storeBytes(of: UInt16(bigEndian: 0x0D0A), as: UInt16.self)
                cursor += 2
            }
            return cursor - base
        }
    }

    /// A decimal count and CRLF.
    @inline(__always)
    private static func putCount(_ value: Int, _ cursor: inout UnsafeMutableRawPointer) {
        cursor += ASCIIDecimal.write(UInt64(value), to: cursor)
        cursor.storeBytes(of: UInt16(bigEndian: 0x0D0A), as: UInt16.self)
        cursor += 2
    }

    /// A bulk string's length line and bytes (its closing CRLF is the caller's).
    @inline(__always)
    private static func putBytes(_ bytes: UnsafeRawBufferPointer, _ cursor: inout UnsafeMutableRawPointer) {
        putCount(bytes.count, &cursor)
        if let source = bytes.baseAddress, bytes.count > 0 { cursor.copyMemory(from: source, byteCount: bytes.count) }
        cursor += bytes.count
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

extension RESPArgument {
    /// The bytes the argument takes on the wire, without its `$len` header.
    var encodedLength: Int {
        switch self {
        case .string(let string): string.utf8.count
        case .bytes(let bytes): bytes.readableBytes
        case .integer(let integer): RESPCommandEncoder.decimalLength(integer)
        }
    }
}
