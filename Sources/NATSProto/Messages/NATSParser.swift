import Transport

/// What the server sent: one protocol operation.
public enum NATSServerOperation: Sendable, Equatable {
    /// `INFO {json}`: the server's description (on connect, and again when the cluster changes).
    case info(ByteBuffer)
    /// `MSG` or `HMSG`: a message for subscription `sid`.
    case message(NATSInboundMessage)
    /// `PING`: the server checks the client is alive; answer PONG.
    case ping
    /// `PONG`: the answer to the client's PING.
    case pong
    /// `+OK` (verbose mode only).
    case ok
    /// `-ERR 'text'`: the text without its quotes.
    case error(String)
}

/// A message as it came off the wire. Subject, reply and payload are slices of the read buffer.
public struct NATSInboundMessage: Sendable, Equatable {
    /// The subject it was published to.
    public var subject: ByteBuffer
    /// The subscription it was delivered for.
    public var subscriptionID: UInt64
    /// The reply subject, if the publisher gave one.
    public var replyTo: ByteBuffer?
    /// The raw header block (`NATS/1.0…\r\n\r\n`), for HMSG.
    public var headerBlock: ByteBuffer?
    /// The payload.
    public var payload: ByteBuffer

    /// The subject as a string.
    public var subjectString: String { String(decoding: subject.readableBytesView, as: UTF8.self) }
    /// The reply subject as a string.
    public var replyToString: String? { replyTo.map { String(decoding: $0.readableBytesView, as: UTF8.self) } }
}

/// Bytes from the server that break the protocol. The connection cannot continue after one.
public struct NATSProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    /// Offset in the stream (bytes since the parser started) of the operation at fault.
    public var offset: Int

    /// `NATS protocol error at byte N: message`.
    public var description: String { "NATS protocol error at byte \(offset): \(message)" }
}

/// A resumable parser for the server's side of the NATS client protocol.
///
/// ``next(_:)`` returns the next operation, or nil when more bytes are needed; it never calls into
/// the connection. A control line is scanned once however it is split (the scan resumes where it
/// stopped), a message's arguments are parsed once, and its payload is awaited by length and then
/// sliced, not copied. Operation names are case-insensitive; fields may be separated by spaces or
/// tabs. Control lines are bounded (4096 bytes by default), payloads by the server's max_payload.
public struct NATSParser: Sendable {
    /// The longest control line accepted.
    public var maximumControlLine: Int
    /// The largest payload (headers included) accepted; set it from INFO's max_payload.
    public var maximumPayload: Int

    /// A message whose control line was parsed and whose payload is awaited.
    private struct Pending: Sendable {
        var subject: ByteBuffer
        var sid: UInt64
        var reply: ByteBuffer?
        var headerLength: Int
        var totalLength: Int
    }

    private var pending: Pending?
    /// How far the current control line has been scanned for its newline without finding it.
    private var scanned = 0
    /// Bytes consumed since the parser started, for error positions.
    public private(set) var streamOffset = 0

    /// Creates a parser; INFO's max_payload should replace the default payload bound.
    public init(maximumControlLine: Int = 4096, maximumPayload: Int = 64 << 20) {
        self.maximumControlLine = maximumControlLine
        self.maximumPayload = maximumPayload
    }

    /// The next operation, or nil when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(NATSProtocolError) -> NATSServerOperation? {
        if let message = pending {
            return try payload(of: message, &buffer)
        }
        // Find the end of the control line, resuming the scan where the last call stopped.
        let limit = maximumControlLine + 2
        guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n"), from: scanned, searchingAtMost: limit - scanned) else {
            scanned = min(buffer.readableBytes, limit)
            if buffer.readableBytes >= limit {
                throw NATSProtocolError(message: "control line longer than \(maximumControlLine) bytes", offset: streamOffset)
            }
            return nil
        }
        scanned = 0
        var lineLength = newline
        if lineLength > 0, buffer.getInteger(at: lineLength - 1, as: UInt8.self) == UInt8(ascii: "\r") { lineLength -= 1 }
        guard var line = buffer.getSlice(at: 0, count: lineLength) else { return nil }
        let lineStart = streamOffset
        buffer.moveReaderIndex(forwardBy: newline + 1)
        streamOffset += newline + 1
        let name = Self.takeField(&line)
        switch Self.operation(name) {
        case .msg:
            return try startMessage(&line, headers: false, at: lineStart, &buffer)
        case .hmsg:
            return try startMessage(&line, headers: true, at: lineStart, &buffer)
        case .ping:
            return .ping
        case .pong:
            return .pong
        case .ok:
            return .ok
        case .err:
            var text = String(decoding: line.readableBytesView, as: UTF8.self).trimmingSpaces
            if text.hasPrefix("'"), text.hasSuffix("'"), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
            return .error(text)
        case .info:
            Self.skipSeparators(&line)
            return .info(line)
        case nil:
            let shown = String(decoding: name.readableBytesView.prefix(16), as: UTF8.self)
            throw NATSProtocolError(message: "unknown operation \"\(shown)\"", offset: lineStart)
        }
    }

    private enum Operation {
        case msg, hmsg, ping, pong, ok, err, info
    }

    /// Recognises an operation name in any letter case.
    private static func operation(_ name: ByteBuffer) -> Operation? {
        var word: UInt64 = 0
        guard name.readableBytes <= 4 else { return nil }
        for byte in name.readableBytesView {
            // Letters fold to upper case; '+' and '-' are kept.
            let folded = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) ? byte - 32 : byte
            word = word << 8 | UInt64(folded)
        }
        switch word {
        case 0x4D_53_47: return .msg  // MSG
        case 0x48_4D_53_47: return .hmsg  // HMSG
        case 0x50_49_4E_47: return .ping  // PING
        case 0x50_4F_4E_47: return .pong  // PONG
        case 0x2B_4F_4B: return .ok  // +OK
        case 0x2D_45_52_52: return .err  // -ERR
        case 0x49_4E_46_4F: return .info  // INFO
        default: return nil
        }
    }

    /// `MSG <subject> <sid> [reply-to] <#bytes>` or `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`.
    private mutating func startMessage(
        _ line: inout ByteBuffer, headers: Bool, at offset: Int, _ buffer: inout ByteBuffer
    ) throws(NATSProtocolError) -> NATSServerOperation? {
        var fields: [ByteBuffer] = []
        while fields.count < 6 {
            let field = Self.takeField(&line)
            if field.readableBytes == 0 { break }
            fields.append(field)
        }
        let expected = headers ? [4, 5] : [3, 4]
        guard expected.contains(fields.count), Self.takeField(&line).readableBytes == 0 else {
            throw NATSProtocolError(message: "\(headers ? "HMSG" : "MSG") with \(fields.count) arguments", offset: offset)
        }
        guard let sid = Self.decimal(fields[1]) else {
            throw NATSProtocolError(message: "subscription id is not a number", offset: offset)
        }
        let hasReply = fields.count == expected[1]
        guard let total = Self.decimal(fields[fields.count - 1]) else {
            throw NATSProtocolError(message: "size is not a number", offset: offset)
        }
        var headerLength = 0
        if headers {
            guard let value = Self.decimal(fields[fields.count - 2]) else {
                throw NATSProtocolError(message: "header size is not a number", offset: offset)
            }
            headerLength = Int(value)
        }
        guard total <= UInt64(maximumPayload), UInt64(headerLength) <= total else {
            throw NATSProtocolError(
                message: "message of \(total) bytes (headers \(headerLength)) exceeds the limit of \(maximumPayload)", offset: offset)
        }
        let message = Pending(
            subject: fields[0], sid: sid, reply: hasReply ? fields[2] : nil, headerLength: headerLength, totalLength: Int(total))
        pending = message
        return try payload(of: message, &buffer)
    }

    /// The message once its payload and the CRLF after it have arrived.
    private mutating func payload(of message: Pending, _ buffer: inout ByteBuffer) throws(NATSProtocolError) -> NATSServerOperation? {
        guard buffer.readableBytes >= message.totalLength + 2 else { return nil }
        guard buffer.getInteger(at: message.totalLength, as: UInt8.self) == UInt8(ascii: "\r"),
            buffer.getInteger(at: message.totalLength + 1, as: UInt8.self) == UInt8(ascii: "\n"),
            let headerBlock = buffer.readSlice(count: message.headerLength),
            let body = buffer.readSlice(count: message.totalLength - message.headerLength)
        else {
            throw NATSProtocolError(message: "payload of \(message.totalLength) bytes is not followed by CRLF", offset: streamOffset)
        }
        buffer.moveReaderIndex(forwardBy: 2)
        streamOffset += message.totalLength + 2
        pending = nil
        return .message(
            NATSInboundMessage(
                subject: message.subject, subscriptionID: message.sid, replyTo: message.reply,
                headerBlock: message.headerLength > 0 ? headerBlock : nil, payload: body))
    }

    private static func isSeparator(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private static func skipSeparators(_ line: inout ByteBuffer) {
        while let byte = line.getInteger(as: UInt8.self), isSeparator(byte) { line.moveReaderIndex(forwardBy: 1) }
    }

    /// The next space- or tab-separated field (empty at the end of the line).
    private static func takeField(_ line: inout ByteBuffer) -> ByteBuffer {
        skipSeparators(&line)
        var length = 0
        while let byte = line.getInteger(at: length, as: UInt8.self), !isSeparator(byte) { length += 1 }
        return line.readSlice(count: length) ?? ByteBuffer()
    }

    /// A non-negative decimal of at most 18 digits.
    private static func decimal(_ field: ByteBuffer) -> UInt64? {
        guard field.readableBytes > 0, field.readableBytes <= 18 else { return nil }
        var value: UInt64 = 0
        for byte in field.readableBytesView {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
