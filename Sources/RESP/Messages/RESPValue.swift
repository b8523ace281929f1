import Transport

/// A RESP3 (or RESP2) value as the server sent it. Payloads are slices of the read buffer.
public enum RESPValue: Sendable, Equatable {
    /// `+OK`.
    case simpleString(ByteBuffer)
    /// `-ERR message`.
    case simpleError(ByteBuffer)
    /// `:42`.
    case integer(Int64)
    /// `$5\r\nhello` (also a streamed `$?` string, assembled).
    case bulkString(ByteBuffer)
    /// `_`, and RESP2's `$-1` / `*-1`.
    case null
    /// `#t` / `#f`.
    case boolean(Bool)
    /// `,3.14`, including `inf`, `-inf` and `nan`.
    case double(Double)
    /// `(12345678901234567890`: the decimal digits, with a leading `-` if negative.
    case bigNumber(String)
    /// `!21\r\nSYNTAX invalid syntax`.
    case bulkError(ByteBuffer)
    /// `=15\r\ntxt:Some string`: the three-letter format and the text.
    case verbatimString(format: String, text: ByteBuffer)
    /// `*2\r\n…` (also a streamed `*?` array).
    case array([RESPValue])
    /// `%1\r\n…`: pairs in the order sent; keys may be of any type.
    case map([RESPPair])
    /// `~2\r\n…`.
    case set([RESPValue])
    /// `>3\r\n…`: out-of-band data (pub/sub messages, invalidations). Never a command's reply.
    case push([RESPValue])
    /// A value preceded by an attribute (`|1\r\n…`): the value and the attribute's pairs.
    indirect case attributed(RESPValue, attributes: [RESPPair])

    /// Whether this is a push (attributes aside), found without copying the value.
    public var isPush: Bool {
        switch self {
        case .push: true
        case .attributed(let value, _): value.isPush
        default: false
        }
    }

    /// The value without any attribute attached to it.
    public var withoutAttributes: RESPValue {
        if case .attributed(let value, _) = self { return value.withoutAttributes }
        return self
    }

    /// Whether this is an error reply (simple or bulk), found without copying the value.
    public var isError: Bool {
        switch self {
        case .simpleError, .bulkError: true
        case .attributed(let value, _): value.isError
        default: false
        }
    }

    /// The text of a simple string, bulk string, verbatim string or error, decoded as UTF-8.
    public var string: String? {
        switch withoutAttributes {
        case .simpleString(let bytes), .bulkString(let bytes), .simpleError(let bytes), .bulkError(let bytes):
            String(decoding: bytes.readableBytesView, as: UTF8.self)
        case .verbatimString(_, let text):
            String(decoding: text.readableBytesView, as: UTF8.self)
        default:
            nil
        }
    }
}

/// One key/value pair of a map or attribute.
public struct RESPPair: Sendable, Equatable {
    /// The key (any RESP type).
    public var key: RESPValue
    /// The value.
    public var value: RESPValue

    /// Creates a pair.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

/// Malformed or oversized input from the server, with the stream offset where it was found.
public struct RESPProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem.
    public enum Kind: Sendable, Equatable {
        /// A byte that starts no RESP type.
        case unknownType
        /// A length, count, integer, double or boolean that does not parse.
        case malformed
        /// A length or count above its limit, or nesting deeper than allowed.
        case limitExceeded
        /// A frame that is not allowed where it appears (a `;` chunk outside a streamed string …).
        case unexpected
    }

    /// The kind of problem.
    public var kind: Kind
    /// Offset in the stream (bytes since the parser started) of the frame at fault.
    public var offset: Int
    /// What was wrong.
    public var message: String

    /// `message at byte offset`.
    public var description: String { "RESP protocol error at byte \(offset): \(SafeText.escaped(message))" }
}

extension RESPValue {
    /// The first element of an array as text (a ROLE reply's role), for messages.
    var arrayFirstString: String? {
        if case .array(let values) = self { return values.first?.string }
        return nil
    }
}
