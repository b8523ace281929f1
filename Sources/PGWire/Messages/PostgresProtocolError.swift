import Transport

/// Bytes from the server that break the protocol: a malformed or oversized message, or a message
/// where the protocol allows none. The connection cannot continue after one.
public struct PostgresProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message type byte at fault, when a message was being decoded.
    public var messageType: UInt8?
    /// Offset in the stream (bytes since the decoder started) of the message at fault.
    public var offset: Int
    /// What was wrong.
    public var message: String

    /// Creates an error.
    public init(messageType: UInt8?, offset: Int, message: String) {
        self.messageType = messageType
        self.offset = offset
        self.message = message
    }

    /// `protocol error in <type> at byte N: message`.
    public var description: String {
        let type = messageType.map { BackendMessage.name(of: $0) } ?? "stream"
        return "PostgreSQL protocol error in \(type) at byte \(offset): \(SafeText.escaped(message))"
    }
}

/// The failure a message body decoder throws; the framing decoder adds the type and offset.
struct MalformedMessage: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Checked readers for message bodies: each throws when the body ends early.
extension ByteBuffer {
    mutating func readBody<T: FixedWidthInteger>(_ type: T.Type, _ field: StaticString) throws(MalformedMessage) -> T {
        guard let value = readInteger(as: T.self) else { throw MalformedMessage("message ends inside \(field)") }
        return value
    }

    mutating func readBodyCString(_ field: StaticString) throws(MalformedMessage) -> String {
        guard let end = firstIndex(of: 0) else { throw MalformedMessage("\(field) has no NUL terminator") }
        let string = readString(count: end) ?? ""
        moveReaderIndex(forwardBy: 1)
        return string
    }

    mutating func readBodySlice(count: Int, _ field: StaticString) throws(MalformedMessage) -> ByteBuffer {
        guard count >= 0, let slice = readSlice(count: count) else {
            throw MalformedMessage("\(field) announces \(count) bytes; \(readableBytes) remain")
        }
        return slice
    }

    /// A count read from the wire, checked against what the rest of the body could hold.
    mutating func readBodyCount(_ field: StaticString, minimumBytesEach: Int) throws(MalformedMessage) -> Int {
        let count = Int(try readBody(Int16.self, field))
        guard count >= 0 else { throw MalformedMessage("negative \(field) \(count)") }
        guard count * minimumBytesEach <= readableBytes else {
            throw MalformedMessage("\(field) \(count) does not fit in the \(readableBytes) bytes left")
        }
        return count
    }
}
