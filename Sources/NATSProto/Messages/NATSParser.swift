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
    public var subjectString: String { subject.withUnsafeReadableBytes { String(decoding: $0, as: UTF8.self) } }
    /// The reply subject as a string.
    public var replyToString: String? { replyTo.map { reply in reply.withUnsafeReadableBytes { String(decoding: $0, as: UTF8.self) } } }
}

/// Bytes from the server that break the protocol. The connection cannot continue after one.
public struct NATSProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    /// Offset in the stream (bytes since the parser started) of the operation at fault.
    public var offset: Int

    /// `NATS protocol error at byte N: message`.
    public var description: String { "NATS protocol error at byte \(offset): \(SafeText.escaped(message))" }
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

        /// The message, its payload cut from the front of `buffer` (checked by `payloadArrived`)
        /// and the CRLF after it consumed.
        consuming func take(from buffer: inout ByteBuffer, streamOffset: inout Int) -> NATSServerOperation {
            let headerBlock = headerLength > 0 ? buffer.getSlice(at: 0, count: headerLength) : nil
            let body = buffer.getSlice(at: headerLength, count: totalLength - headerLength) ?? ByteBuffer()
            buffer.moveReaderIndex(forwardBy: totalLength + 2)
            streamOffset += totalLength + 2
            return .message(NATSInboundMessage(subject: subject, subscriptionID: sid, replyTo: reply, headerBlock: headerBlock, payload: body))
        }
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
        if let totalLength = pending?.totalLength {
            guard try payloadArrived(totalLength, buffer), let message = pending.take() else { return nil }
            return message.take(from: &buffer, streamOffset: &streamOffset)
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
        // Fields are located by offset in place: no slice, no array, no reference count until
        // the subject and reply of a message are cut out.
        let fields = buffer.withUnsafeReadableBytes { raw in LineFields(scanning: raw, length: lineLength) }
        let lineStart = streamOffset
        let operation = fields.count > 0 ? buffer.withUnsafeReadableBytes { Self.operation($0, fields.start(0), fields.length(0)) } : nil
        if operation == .msg || operation == .hmsg {
            let message = try messageLine(fields, headers: operation == .hmsg, at: lineStart, buffer)
            buffer.moveReaderIndex(forwardBy: newline + 1)
            streamOffset += newline + 1
            // Usually the payload is there already: the message is built without being stored.
            guard try payloadArrived(message.totalLength, buffer) else {
                pending = message
                return nil
            }
            return message.take(from: &buffer, streamOffset: &streamOffset)
        }
        defer {
            buffer.moveReaderIndex(forwardBy: newline + 1)
            streamOffset += newline + 1
        }
        switch operation {
        case .msg, .hmsg:
            return nil
        case .ping:
            return .ping
        case .pong:
            return .pong
        case .ok:
            return .ok
        case .err:
            // The text after -ERR, spaces and tabs trimmed on the bytes, decoded once.
            var message = ""
            if fields.count > 1 {
                message = buffer.withUnsafeReadableBytes { raw in
                    var start = fields.start(1)
                    var end = lineLength
                    while start < end, raw[start] == UInt8(ascii: " ") || raw[start] == UInt8(ascii: "\t") { start += 1 }
                    while end > start, raw[end - 1] == UInt8(ascii: " ") || raw[end - 1] == UInt8(ascii: "\t") { end -= 1 }
                    return String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<end]), as: UTF8.self)
                }
            }
            if message.hasPrefix("'"), message.hasSuffix("'"), message.count >= 2 { message = String(message.dropFirst().dropLast()) }
            return .error(message)
        case .info:
            let start = fields.count > 1 ? fields.start(1) : lineLength
            return .info(buffer.getSlice(at: start, count: lineLength - start) ?? ByteBuffer())
        case nil:
            let shown = String(decoding: buffer.readableBytesView.prefix(Swift.min(16, fields.count > 0 ? fields.length(0) : 0)), as: UTF8.self)
            throw NATSProtocolError(message: "unknown operation \"\(shown)\"", offset: lineStart)
        }
    }

    private enum Operation {
        case msg, hmsg, ping, pong, ok, err, info
    }

    /// Recognises an operation name in any letter case.
    private static func operation(_ raw: UnsafeRawBufferPointer, _ start: Int, _ length: Int) -> Operation? {
        guard length <= 4 else { return nil }
        var word: UInt64 = 0
        for index in start..<(start + length) {
            let byte = raw[index]
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

    /// `MSG <subject> <sid> [reply-to] <#bytes>` or `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`,
    /// with the fields located in the unread control line at the front of `buffer`.
    private func messageLine(_ fields: LineFields, headers: Bool, at offset: Int, _ buffer: ByteBuffer) throws(NATSProtocolError) -> Pending {
        let arguments = fields.count - 1
        let expected = headers ? 4...5 : 3...4
        guard expected.contains(arguments) else {
            throw NATSProtocolError(message: "\(headers ? "HMSG" : "MSG") with \(Swift.max(0, arguments)) arguments", offset: offset)
        }
        let hasReply = arguments == expected.upperBound
        let numbers = buffer.withUnsafeReadableBytes { raw in
            (
                sid: Self.decimal(raw, fields.start(2), fields.length(2)),
                total: Self.decimal(raw, fields.start(fields.count - 1), fields.length(fields.count - 1)),
                header: headers ? Self.decimal(raw, fields.start(fields.count - 2), fields.length(fields.count - 2)) : 0
            )
        }
        guard let sid = numbers.sid else { throw NATSProtocolError(message: "subscription id is not a number", offset: offset) }
        guard let total = numbers.total else { throw NATSProtocolError(message: "size is not a number", offset: offset) }
        guard let headerLength = numbers.header else { throw NATSProtocolError(message: "header size is not a number", offset: offset) }
        guard total <= UInt64(maximumPayload), headerLength <= total else {
            throw NATSProtocolError(
                message: "message of \(total) bytes (headers \(headerLength)) exceeds the limit of \(maximumPayload)", offset: offset)
        }
        let subject = buffer.getSlice(at: fields.start(1), count: fields.length(1)) ?? ByteBuffer()
        let reply = hasReply ? buffer.getSlice(at: fields.start(3), count: fields.length(3)) : nil
        return Pending(subject: subject, sid: sid, reply: reply, headerLength: Int(headerLength), totalLength: Int(total))
    }

    /// Whether a payload of `totalLength` bytes and the CRLF after it are at the front of
    /// `buffer`; throws when the CRLF is missing.
    private func payloadArrived(_ totalLength: Int, _ buffer: ByteBuffer) throws(NATSProtocolError) -> Bool {
        guard buffer.readableBytes >= totalLength + 2 else { return false }
        guard buffer.getInteger(at: totalLength, as: UInt16.self) == 0x0D0A else {
            throw NATSProtocolError(message: "payload of \(totalLength) bytes is not followed by CRLF", offset: streamOffset)
        }
        return true
    }

    /// A non-negative decimal of 1 to 18 digits at `start..<start+length` of `raw`.
    private static func decimal(_ raw: UnsafeRawBufferPointer, _ start: Int, _ length: Int) -> UInt64? {
        guard length > 0, length <= 18 else { return nil }
        var value: UInt64 = 0
        for index in start..<(start + length) {
            let byte = raw[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

/// Where the space- or tab-separated fields of a control line are (at most 7; more makes the
/// count 8, which no operation accepts).
struct LineFields {
    // Inline arrays, not SIMD vectors: a SIMD lane written at a run-time index goes through the
    // stack and back into a register, a stall on every field (three quarters of the scan's time).
    private var starts = InlineArray<8, Int32>(repeating: 0)
    private var lengths = InlineArray<8, Int32>(repeating: 0)
    private(set) var count = 0

    init(scanning raw: UnsafeRawBufferPointer, length: Int) {
        guard let base = raw.baseAddress, length <= raw.count else { return }
        func isSeparator(_ index: Int) -> Bool {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            return byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
        }
        var index = 0
        while index < length {
            if isSeparator(index) {
                index += 1
                continue
            }
            let start = index
            while index < length, !isSeparator(index) { index += 1 }
            if count == 7 {
                count = 8
                return
            }
            starts[count] = Int32(start)
            lengths[count] = Int32(index - start)
            count += 1
        }
    }

    func start(_ index: Int) -> Int { Int(starts[index]) }
    func length(_ index: Int) -> Int { Int(lengths[index]) }
}
