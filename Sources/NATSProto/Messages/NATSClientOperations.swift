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
        var headerLength = 0
        if let headers, !headers.isEmpty {
            guard let length = headers.encodedLength() else {
                throw NATSUsageError("a header name or value holds characters a header cannot carry")
            }
            headerLength = length
        }
        writePublish(
            subject: subject, replyTo: replyTo, replyToken: nil, headers: headerLength > 0 ? headers : nil, headerLength: headerLength,
            payload: payload, into: &buffer)
    }

    /// PUB or HPUB for subjects already validated and a header block of `headerLength` bytes
    /// (0: no headers). With `replyToken`, the reply subject is `replyTo` followed by the token's
    /// digits (a request's inbox), written without building a string.
    static func writePublish<Payload: Collection<UInt8>>(
        subject: String, replyTo: String?, replyToken: UInt64?, headers: NATSHeaders?, headerLength: Int, payload: Payload,
        into buffer: inout ByteBuffer
    ) {
        let payloadLength = payload.count
        if let headers, headerLength > 0 {
            _ = buffer.writeString("HPUB ")
            _ = buffer.writeString(subject)
            writeReply(replyTo, replyToken, &buffer)
            writeDecimal(headerLength, &buffer)
            writeDecimal(headerLength + payloadLength, &buffer)
            buffer.writeInteger(UInt16(0x0D0A))
            _ = headers.encode(into: &buffer)
            buffer.writeBytes(payload)
            buffer.writeInteger(UInt16(0x0D0A))
            return
        }
        // The hot path: the whole operation in one reservation and one pass of raw copies.
        var subject = subject
        var reply = replyTo ?? ""
        let room = 4 + subject.utf8.count + 1 + reply.utf8.count + 21 + 21 + 2 + payloadLength + 2
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { region -> Int in
            guard let base = region.baseAddress else { return 0 }
            var cursor = base
            cursor.storeBytes(of: UInt32(bigEndian: 0x5055_4220), as: UInt32.self)  // "PUB "
            cursor += 4
            RawWriter.copy(&subject, &cursor)
            if replyTo != nil {
                RawWriter.byte(UInt8(ascii: " "), &cursor)
                RawWriter.copy(&reply, &cursor)
                if let replyToken { RawWriter.decimal(replyToken, &cursor) }
            }
            RawWriter.byte(UInt8(ascii: " "), &cursor)
            RawWriter.decimal(UInt64(payloadLength), &cursor)
            cursor.storeBytes(of: UInt16(bigEndian: 0x0D0A), as: UInt16.self)
            cursor += 2
            let copied: Bool? = payload.withContiguousStorageIfAvailable { bytes in
                if let from = bytes.baseAddress { RawWriter.bytes(UnsafeRawPointer(from), bytes.count, to: cursor) }
                return true
            }
            if copied == nil {
                for byte in payload { RawWriter.byte(byte, &cursor) }
            } else {
                cursor += payloadLength
            }
            cursor.storeBytes(of: UInt16(bigEndian: 0x0D0A), as: UInt16.self)
            cursor += 2
            return cursor - base
        }
    }

    static func writeReply(_ replyTo: String?, _ token: UInt64?, _ buffer: inout ByteBuffer) {
        guard let replyTo else { return }
        buffer.writeInteger(UInt8(ascii: " "))
        _ = buffer.writeString(replyTo)
        if let token { buffer.writeDecimal(Int64(truncatingIfNeeded: token & UInt64(Int64.max))) }
    }

    /// `SUB <subject> [queue group] <sid>`.
    public static func subscribe(subject: String, queue: String? = nil, sid: UInt64, into buffer: inout ByteBuffer) throws(NATSUsageError) {
        try NATSSubject.validate(subject, wildcards: true)
        if let queue { try NATSSubject.validateQueue(queue) }
        writeSubscribe(subject: subject, queue: queue, sid: sid, into: &buffer)
    }

    /// SUB for a subject and queue already validated.
    static func writeSubscribe(subject: String, queue: String?, sid: UInt64, into buffer: inout ByteBuffer) {
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
    static func writeField(_ text: String, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: " "))
        _ = buffer.writeString(text)
    }

    /// A space and the decimal digits of a non-negative `value`.
    static func writeDecimal(_ value: Int, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDecimal(Int64(max(0, value)))
    }
}

/// Unchecked writes into a region already reserved for them.
enum RawWriter {
    @inline(__always)
    static func byte(_ byte: UInt8, _ cursor: inout UnsafeMutableRawPointer) {
        cursor.storeBytes(of: byte, as: UInt8.self)
        cursor += 1
    }

    @inline(__always)
    static func copy(_ text: inout String, _ cursor: inout UnsafeMutableRawPointer) {
        let target = cursor
        let count = text.withUTF8 { utf8 -> Int in
            if let from = utf8.baseAddress { bytes(UnsafeRawPointer(from), utf8.count, to: target) }
            return utf8.count
        }
        cursor += count
    }

    /// Copies `count` bytes. Up to 16 bytes (a subject, a small payload) are moved with two
    /// overlapping loads and stores in place of a call to `memmove`.
    @inline(__always)
    static func bytes(_ from: UnsafeRawPointer, _ count: Int, to target: UnsafeMutableRawPointer) {
        switch count {
        case 8...16:
            let head = from.loadUnaligned(as: UInt64.self)
            let tail = from.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            target.storeBytes(of: head, as: UInt64.self)
            target.storeBytes(of: tail, toByteOffset: count - 8, as: UInt64.self)
        case 4..<8:
            let head = from.loadUnaligned(as: UInt32.self)
            let tail = from.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
            target.storeBytes(of: head, as: UInt32.self)
            target.storeBytes(of: tail, toByteOffset: count - 4, as: UInt32.self)
        case 0..<4:
            for offset in 0..<count { target.storeBytes(of: from.load(fromByteOffset: offset, as: UInt8.self), toByteOffset: offset, as: UInt8.self) }
        default:
            target.copyMemory(from: from, byteCount: count)
        }
    }

    /// The decimal digits of `value` (at most 20).
    @inline(__always)
    static func decimal(_ value: UInt64, _ cursor: inout UnsafeMutableRawPointer) {
        cursor += ASCIIDecimal.write(value, to: cursor)
    }
}

/// The client was used in a way the protocol cannot carry: an invalid subject or queue name,
/// a payload over the server's limit, a header that cannot be encoded.
public struct NATSUsageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    init(_ message: String) { self.message = SafeText.escaped(message) }
    /// The message.
    public var description: String { SafeText.escaped(message) }
}

/// Subject rules: tokens separated by dots, none empty, no whitespace or control characters;
/// `*` (one token) and `>` (the rest, last token only) only where wildcards are allowed.
public enum NATSSubject {
    /// Throws when `subject` cannot be used (for publishing without wildcards, for subscribing with).
    public static func validate(_ subject: String, wildcards: Bool) throws(NATSUsageError) {
        if let problem = problem(subject, wildcards: wildcards) { throw NATSUsageError(problem) }
    }

    /// The same check, as the client's error; `role` names the string in the message.
    static func validate(_ subject: String, wildcards: Bool, as role: String) throws(NATSError) {
        if let problem = problem(subject, wildcards: wildcards) { throw NATSError(.usage, "invalid \(role): \(problem)") }
    }

    /// What is wrong with `subject`, or nil; one pass over its bytes, no allocation.
    static func problem(_ subject: String, wildcards: Bool) -> String? {
        var subject = subject
        // The common case first: no empty token, no wildcard character, no space or control byte.
        if subject.withUTF8({ isPlain($0) }) { return nil }
        return subject.withUTF8 { bytes -> String? in
            func shown() -> String { String(decoding: bytes.prefix(80), as: UTF8.self) }
            if bytes.isEmpty { return "empty subject" }
            if bytes.count > 4096 { return "subject longer than 4096 bytes" }
            var tokenStart = 0
            for index in 0...bytes.count {
                if index < bytes.count, bytes[index] != UInt8(ascii: ".") {
                    if bytes[index] <= 0x20 || bytes[index] == 0x7F { return "subject \"\(shown())\" contains whitespace or a control character" }
                    continue
                }
                let length = index - tokenStart
                if length == 0 { return "subject \"\(shown())\" has an empty token" }
                if length == 1, bytes[tokenStart] == UInt8(ascii: "*") || bytes[tokenStart] == UInt8(ascii: ">") {
                    if !wildcards { return "subject \"\(shown())\" has a wildcard; publish needs a literal subject" }
                    if bytes[tokenStart] == UInt8(ascii: ">"), index != bytes.count { return "\">\" must be the last token of \"\(shown())\"" }
                }
                tokenStart = index + 1
            }
            return nil
        }
    }

    /// Whether `bytes` is a subject with no empty token and no space, control, `*` or `>` byte:
    /// valid for publishing as it is. False says only that the full check must decide. Eight
    /// bytes at a time (SWAR): a publish validates its subject, so this is on its hot path.
    static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = bytes.count
        guard count > 0, count <= 4096, let base = bytes.baseAddress else { return false }
        let dot = UInt8(ascii: ".")
        guard base[0] != dot, base[count - 1] != dot else { return false }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let lows: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        /// 0x80 in exactly the bytes of `word` equal to `byte`.
        @inline(__always) func equal(_ word: UInt64, _ byte: UInt8) -> UInt64 {
            let x = word ^ (ones &* UInt64(byte))
            return ~(((x & lows) &+ lows) | x | lows)
        }
        var index = 0
        var previousWasDot = false
        let raw = UnsafeRawPointer(base)
        while index + 8 <= count {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            // Some byte below 0x21 (space and controls): exact as an existence test.
            if (word &- ones &* 0x21) & ~word & highs != 0 { return false }
            if equal(word, 0x7F) | equal(word, UInt8(ascii: "*")) | equal(word, UInt8(ascii: ">")) != 0 { return false }
            let dots = equal(word, dot)
            // Two dots side by side: within the word, or across the boundary with the last one.
            if dots & (dots << 8) != 0 || (previousWasDot && dots & 0x80 != 0) { return false }
            previousWasDot = dots >> 63 != 0
            index += 8
        }
        while index < count {
            let byte = base[index]
            if byte == dot {
                if previousWasDot { return false }
                previousWasDot = true
            } else {
                if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") { return false }
                previousWasDot = false
            }
            index += 1
        }
        return true
    }

    /// Throws when `queue` cannot be a queue group name.
    public static func validateQueue(_ queue: String) throws(NATSUsageError) {
        guard !queue.isEmpty, queue.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw NATSUsageError("queue group \"\(queue.prefix(80))\" is empty or contains whitespace")
        }
    }
}
