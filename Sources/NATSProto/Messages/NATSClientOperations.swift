import Transport

/// Encoders for what the client sends, each appended to an outbound buffer so that many
/// operations leave in one write. Subjects are validated first; an invalid one writes nothing.
public enum NATSClientOperation {
    /// `CONNECT {json}`.
    public static func connect(json: String, into buffer: inout ByteBuffer) {
        _ = buffer.writeString("CONNECT ")
        _ = buffer.writeString(json)
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// `PUB <subject> [reply-to] <#bytes>\r\n<payload>\r\n`, or `HPUB` with headers.
    public static func publish<Payload: Collection<UInt8>>(
        subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: Payload, into buffer: inout ByteBuffer
    ) throws(NATSUsageError) {
        try NATSSubject.validate(subject, wildcards: false)
        if let replyTo { try NATSSubject.validate(replyTo, wildcards: false) }
        if let headers, !headers.isEmpty {
            guard let headerLength = headers.encodedLength() else {
                throw NATSUsageError("a header name or value holds characters a header cannot carry")
            }
            _ = buffer.writeString("HPUB ")
            _ = buffer.writeString(subject)
            if let replyTo { writeField(replyTo, &buffer) }
            writeDecimal(headerLength, &buffer)
            writeDecimal(headerLength + payload.count, &buffer)
            buffer.writeInteger(UInt16(0x0D0A))
            _ = headers.encode(into: &buffer)
        } else {
            _ = buffer.writeString("PUB ")
            _ = buffer.writeString(subject)
            if let replyTo { writeField(replyTo, &buffer) }
            writeDecimal(payload.count, &buffer)
            buffer.writeInteger(UInt16(0x0D0A))
        }
        buffer.writeBytes(payload)
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// `SUB <subject> [queue group] <sid>`.
    public static func subscribe(subject: String, queue: String? = nil, sid: UInt64, into buffer: inout ByteBuffer) throws(NATSUsageError) {
        try NATSSubject.validate(subject, wildcards: true)
        if let queue { try NATSSubject.validateQueue(queue) }
        _ = buffer.writeString("SUB ")
        _ = buffer.writeString(subject)
        if let queue { writeField(queue, &buffer) }
        writeDecimal(Int(truncatingIfNeeded: sid), &buffer)
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// `UNSUB <sid> [max-msgs]`.
    public static func unsubscribe(sid: UInt64, after maximum: Int? = nil, into buffer: inout ByteBuffer) {
        _ = buffer.writeString("UNSUB")
        writeDecimal(Int(truncatingIfNeeded: sid), &buffer)
        if let maximum { writeDecimal(maximum, &buffer) }
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// `PING`.
    public static func ping(into buffer: inout ByteBuffer) { _ = buffer.writeString("PING\r\n") }

    /// `PONG`.
    public static func pong(into buffer: inout ByteBuffer) { _ = buffer.writeString("PONG\r\n") }

    /// A space and `text`.
    private static func writeField(_ text: String, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: " "))
        _ = buffer.writeString(text)
    }

    /// A space and the decimal digits of a non-negative `value`.
    private static func writeDecimal(_ value: Int, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDecimal(Int64(max(0, value)))
    }
}

/// The client was used in a way the protocol cannot carry: an invalid subject or queue name,
/// a payload over the server's limit, a header that cannot be encoded.
public struct NATSUsageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Subject rules: tokens separated by dots, none empty, no whitespace or control characters;
/// `*` (one token) and `>` (the rest, last token only) only where wildcards are allowed.
public enum NATSSubject {
    /// Throws when `subject` cannot be used (for publishing without wildcards, for subscribing with).
    public static func validate(_ subject: String, wildcards: Bool) throws(NATSUsageError) {
        guard !subject.isEmpty else { throw NATSUsageError("empty subject") }
        guard subject.utf8.count <= 4096 else { throw NATSUsageError("subject longer than 4096 bytes") }
        let tokens = subject.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for (index, token) in tokens.enumerated() {
            guard !token.isEmpty else { throw NATSUsageError("subject \"\(subject)\" has an empty token") }
            guard !token.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
                throw NATSUsageError("subject \"\(subject.prefix(80))\" contains whitespace or a control character")
            }
            let isStar = token.count == 1 && token.first == UInt8(ascii: "*")
            let isTail = token.count == 1 && token.first == UInt8(ascii: ">")
            if isStar || isTail {
                guard wildcards else { throw NATSUsageError("subject \"\(subject)\" has a wildcard; publish needs a literal subject") }
                if isTail && index != tokens.count - 1 { throw NATSUsageError("\">\" must be the last token of \"\(subject)\"") }
            }
        }
    }

    /// Throws when `queue` cannot be a queue group name.
    public static func validateQueue(_ queue: String) throws(NATSUsageError) {
        guard !queue.isEmpty, queue.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw NATSUsageError("queue group \"\(queue.prefix(80))\" is empty or contains whitespace")
        }
    }
}
