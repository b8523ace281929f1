import Transport

/// Message headers in the `NATS/1.0` format (ADR-4): an optional inline status code and
/// description, then `Key: Value` lines. Keys keep their case; a key may repeat.
public struct NATSHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    /// The inline status (`503` no responders, `404`, `408`, `409`, `100` idle heartbeat or flow
    /// control …), if any.
    public var status: Int?
    /// The status description (`No Responders`, `Idle Heartbeat` …).
    public var statusDescription: String?
    /// The fields in order, repeated keys included.
    public private(set) var fields: [(name: String, value: String)] = []

    /// No headers.
    public init() {}

    /// Headers from `name: value` pairs.
    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { append(name, value) }
    }

    /// Adds a value (a repeated name adds another line).
    public mutating func append(_ name: String, _ value: String) {
        fields.append((name, value))
    }

    /// Replaces every value of `name` with `value` (nil removes them).
    public subscript(name: String) -> String? {
        get { fields.first { $0.name == name }?.value }
        set {
            fields.removeAll { $0.name == name }
            if let newValue { fields.append((name, newValue)) }
        }
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    /// Whether there is nothing to send (no status, no fields).
    public var isEmpty: Bool { status == nil && fields.isEmpty }

    /// Iterates the fields.
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (lhs: NATSHeaders, rhs: NATSHeaders) -> Bool {
        lhs.status == rhs.status && lhs.statusDescription == rhs.statusDescription
            && lhs.fields.elementsEqual(rhs.fields, by: { $0.name == $1.name && $0.value == $1.value })
    }

    /// A header name: printable ASCII without ':' or whitespace.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
    }

    /// A header value: no CR or LF.
    static func isValidValue(_ value: String) -> Bool {
        !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A })
    }

    /// The length of the encoded header block, or nil for a name or value that cannot be carried.
    func encodedLength() -> Int? {
        guard fields.allSatisfy({ Self.isValidName($0.name) && Self.isValidValue($0.value) }),
            statusDescription.map(Self.isValidValue) ?? true
        else { return nil }
        var length = "NATS/1.0\r\n".utf8.count + 2
        if let status {
            length += 1 + String(status).utf8.count
            if let statusDescription, !statusDescription.isEmpty { length += 1 + statusDescription.utf8.count }
        }
        for (name, value) in fields { length += name.utf8.count + 2 + value.utf8.count + 2 }
        return length
    }

    /// Appends the header block (ending with the blank line); returns false, writing nothing, for
    /// a name or value that cannot be carried.
    func encode(into buffer: inout ByteBuffer) -> Bool {
        guard encodedLength() != nil else { return false }
        write(into: &buffer)
        return true
    }

    /// Appends the header block of headers already checked by ``encodedLength()``.
    private func write(into buffer: inout ByteBuffer) {
        _ = buffer.writeString("NATS/1.0")
        if let status {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeDecimal(Int64(status))
            if let statusDescription, !statusDescription.isEmpty {
                buffer.writeInteger(UInt8(ascii: " "))
                _ = buffer.writeString(statusDescription)
            }
        }
        buffer.writeInteger(UInt16(0x0D0A))
        for (name, value) in fields {
            _ = buffer.writeString(name)
            buffer.writeInteger(UInt16(0x3A20))  // ": "
            _ = buffer.writeString(value)
            buffer.writeInteger(UInt16(0x0D0A))
        }
        buffer.writeInteger(UInt16(0x0D0A))
    }

    /// Parses a header block. Lines without a colon are refused; values are trimmed of the
    /// spaces around them.
    public init(parsing block: ByteBuffer) throws(NATSProtocolError) {
        // Byte by byte: every message with headers (each JetStream reply, each status) goes
        // through here. Names and values become strings once, trimmed where they lie.
        var parsed = NATSHeaders()
        try block.withUnsafeReadableBytes { (raw: UnsafeRawBufferPointer) throws(NATSProtocolError) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.count
            /// The end of the line starting at `start` (the index of its CR LF, or `end`).
            func lineEnd(from start: Int) -> Int {
                var index = start
                while index + 1 < end {
                    if bytes[index] == 0x0D, bytes[index + 1] == 0x0A { return index }
                    index += 1
                }
                return end
            }
            func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
            func text(_ from: Int, _ to: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self) }

            let version: StaticString = "NATS/1.0"
            let firstEnd = lineEnd(from: 0)
            guard firstEnd >= version.utf8CodeUnitCount,
                UnsafeBufferPointer(start: version.utf8Start, count: version.utf8CodeUnitCount).elementsEqual(bytes[0..<version.utf8CodeUnitCount])
            else {
                throw NATSProtocolError(message: "header block does not start with NATS/1.0", offset: 0)
            }
            var position = version.utf8CodeUnitCount
            while position < firstEnd, isBlank(bytes[position]) { position += 1 }
            if position < firstEnd {
                var digits = 0
                var code = 0
                while position + digits < firstEnd, digits < 4, case let digit = bytes[position + digits] &- 0x30, digit < 10 {
                    code = code * 10 + Int(digit)
                    digits += 1
                }
                guard digits == 3 else {
                    throw NATSProtocolError(
                        message: "header status \"\(text(position, Swift.min(firstEnd, position + 20)))\" is not a 3-digit code", offset: 0)
                }
                parsed.status = code
                position += 3
                while position < firstEnd, isBlank(bytes[position]) { position += 1 }
                if position < firstEnd { parsed.statusDescription = text(position, firstEnd) }
            }
            var start = firstEnd + 2
            while start < end {
                let stop = lineEnd(from: start)
                defer { start = stop + 2 }
                if stop == start { continue }
                var colon = start
                while colon < stop, bytes[colon] != UInt8(ascii: ":") { colon += 1 }
                guard colon < stop else { throw NATSProtocolError(message: "header line without a colon", offset: 0) }
                guard colon > start, bytes[start..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw NATSProtocolError(message: "invalid header name", offset: 0)
                }
                var valueStart = colon + 1
                var valueEnd = stop
                while valueStart < valueEnd, isBlank(bytes[valueStart]) { valueStart += 1 }
                while valueEnd > valueStart, isBlank(bytes[valueEnd - 1]) { valueEnd -= 1 }
                parsed.fields.append((text(start, colon), text(valueStart, valueEnd)))
            }
        }
        self = parsed
    }
}
