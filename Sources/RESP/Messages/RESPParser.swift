#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Transport

/// A resumable RESP3/RESP2 reply parser.
///
/// Call ``next(_:)`` with the read buffer whenever bytes arrive: it returns the next complete
/// top-level value, or nil when more bytes are needed. Aggregates under construction, the scan
/// position of an incomplete line and the length of an awaited bulk payload are kept between
/// calls, so no byte is examined twice however the stream is split. Bulk payloads are slices of
/// the buffer. Every size read from the wire is checked against ``Limits``.
public struct RESPParser: Sendable {
    /// Bounds on what the server may send.
    public struct Limits: Sendable {
        /// Longest bulk, verbatim or error payload (Redis's own default `proto-max-bulk-len`).
        public var maximumBulkLength: Int
        /// Most elements in one aggregate (a map counts its pairs twice).
        public var maximumAggregateCount: Int
        /// Deepest nesting of aggregates and attributes.
        public var maximumDepth: Int
        /// Longest line (simple strings, errors, numbers).
        public var maximumLineLength: Int

        /// Creates limits; the defaults fit every reply Redis sends in practice.
        public init(
            maximumBulkLength: Int = 512 * 1024 * 1024, maximumAggregateCount: Int = 1 << 24,
            maximumDepth: Int = 128, maximumLineLength: Int = 1024 * 1024
        ) {
            self.maximumBulkLength = maximumBulkLength
            self.maximumAggregateCount = maximumAggregateCount
            self.maximumDepth = maximumDepth
            self.maximumLineLength = maximumLineLength
        }
    }

    private enum AggregateKind: Sendable {
        case array, map, set, push, attribute
    }

    private struct Frame: Sendable {
        var kind: AggregateKind
        /// Elements still expected; nil for a streamed aggregate (ended by `.`).
        var remaining: Int?
        var elements: [RESPValue] = []
        /// An attribute read at this level, waiting for the value it belongs to.
        var pendingAttributes: [RESPPair]?
    }

    private enum PayloadKind: Sendable {
        case bulk, verbatim, bulkError, chunk
    }

    /// The limits in force.
    public var limits: Limits
    private var stack: [Frame] = []
    private var topLevelAttributes: [RESPPair]?
    private var awaitedPayload: (kind: PayloadKind, length: Int)?
    private var streamedString: ByteBuffer?
    private var lineScanned = 0
    private var consumed = 0
    /// Stream offset of the line being handled (the header, for a payload).
    private var frameStart = 0
    /// Bytes examined so far (each at most once); exposed so tests can bound the work.
    public private(set) var bytesExamined = 0

    /// Creates a parser.
    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Consumes the next reply without building it when it is a whole simple string or integer
    /// line at the top level (`+OK`, `:1`), as checked as ``next(_:)`` would; returns false, and
    /// consumes nothing, for anything else (an error, a push, an aggregate, a partial line …),
    /// which ``next(_:)`` then reads. For callers that only count such replies.
    public mutating func skipSimpleReply(_ buffer: inout ByteBuffer) -> Bool {
        guard stack.isEmpty, awaitedPayload == nil, streamedString == nil, topLevelAttributes == nil, lineScanned == 0 else {
            return false
        }
        let searchLimit = Swift.min(buffer.readableBytes, limits.maximumLineLength + 3)
        let end = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard searchLimit >= 3, let base = bytes.baseAddress else { return nil }
            let type = base.load(as: UInt8.self)
            guard type == UInt8(ascii: "+") || type == UInt8(ascii: ":"), let end = Self.newline(in: bytes, from: 1, to: searchLimit) else {
                return nil
            }
            guard end >= 2, base.load(fromByteOffset: end - 1, as: UInt8.self) == 13 else { return nil }
            if type == UInt8(ascii: ":") {
                // Up to 18 digits with an optional sign: within 64 bits, as next(_:) requires.
                let sign = base.load(fromByteOffset: 1, as: UInt8.self)
                var index = sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") ? 2 : 1
                let digits = end - 1 - index
                guard digits > 0, digits <= 18 else { return nil }
                while index < end - 1 {
                    let byte = base.load(fromByteOffset: index, as: UInt8.self)
                    guard byte >= 48, byte <= 57 else { return nil }
                    index += 1
                }
            }
            return end
        }
        guard let end else { return false }
        buffer.moveReaderIndex(forwardBy: end + 1)
        bytesExamined += end + 1
        consumed += end + 1
        return true
    }

    /// The offset of the first LF in `bytes[from..<limit]` (memchr, in place), or nil.
    private static func newline(in bytes: UnsafeRawBufferPointer, from: Int, to limit: Int) -> Int? {
        guard let base = bytes.baseAddress, limit > from, let hit = memchr(base + from, 10, limit - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }

    /// Returns the next complete top-level value, or nil when more bytes are needed. Consumed
    /// bytes are removed from `buffer`'s readable region; partial input stays for the next call.
    public mutating func next(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        while true {
            if let (kind, length) = awaitedPayload {
                guard buffer.readableBytes >= length + 2 else { return nil }
                guard buffer.getInteger(at: length, as: UInt8.self) == 13, buffer.getInteger(at: length + 1, as: UInt8.self) == 10 else {
                    throw error(.malformed, "payload of \(length) bytes is not followed by CRLF")
                }
                guard let payload = buffer.readSlice(count: length) else { return nil }  // checked above
                buffer.moveReaderIndex(forwardBy: 2)
                bytesExamined += 2
                consumed += length + 2
                awaitedPayload = nil
                let value: RESPValue
                switch kind {
                case .bulk:
                    value = .bulkString(payload)
                case .bulkError:
                    value = .bulkError(payload)
                case .verbatim:
                    guard length >= 4, payload.getInteger(at: 3, as: UInt8.self) == UInt8(ascii: ":") else {
                        throw error(.malformed, "verbatim string without a three-letter format and ':'")
                    }
                    var text = payload
                    let format = text.readString(count: 3) ?? ""
                    text.moveReaderIndex(forwardBy: 1)
                    value = .verbatimString(format: format, text: text)
                case .chunk:
                    streamedString?.writeBuffer(payload)
                    continue
                }
                if let result = try complete(value) { return result }
                continue
            }
            guard let (type, line) = try readLine(&buffer) else { return nil }
            if streamedString != nil && type != UInt8(ascii: ";") {
                throw error(.unexpected, "only ';' chunks may follow a streamed string header")
            }
            let value: RESPValue
            switch type {
            case UInt8(ascii: "+"):
                value = .simpleString(line)
            case UInt8(ascii: "-"):
                value = .simpleError(line)
            case UInt8(ascii: ":"):
                value = .integer(try integer(line, what: "integer"))
            case UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "!"):
                if type == UInt8(ascii: "$"), line.readableBytesView.elementsEqual([UInt8(ascii: "?")]) {
                    guard streamedString == nil else { throw error(.unexpected, "streamed string inside a streamed string") }
                    streamedString = ByteBuffer()
                    continue
                }
                let length = try integer(line, what: "length")
                if length == -1 && type == UInt8(ascii: "$") {
                    value = .null
                } else {
                    guard length >= 0, length <= limits.maximumBulkLength else {
                        throw error(.limitExceeded, "bulk length \(length) outside 0...\(limits.maximumBulkLength)")
                    }
                    awaitedPayload = (type == UInt8(ascii: "$") ? .bulk : type == UInt8(ascii: "=") ? .verbatim : .bulkError, Int(length))
                    continue
                }
            case UInt8(ascii: ";"):
                guard streamedString != nil else { throw error(.unexpected, "';' chunk outside a streamed string") }
                let length = try integer(line, what: "chunk length")
                guard length >= 0, length <= limits.maximumBulkLength,
                    (streamedString?.readableBytes ?? 0) + Int(length) <= limits.maximumBulkLength
                else {
                    throw error(.limitExceeded, "streamed string longer than \(limits.maximumBulkLength) bytes")
                }
                if length == 0 {
                    value = .bulkString(streamedString ?? ByteBuffer())
                    streamedString = nil
                } else {
                    awaitedPayload = (.chunk, Int(length))
                    continue
                }
            case UInt8(ascii: "*"), UInt8(ascii: "%"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "|"):
                let kind: AggregateKind =
                    switch type {
                    case UInt8(ascii: "*"): .array
                    case UInt8(ascii: "%"): .map
                    case UInt8(ascii: "~"): .set
                    case UInt8(ascii: ">"): .push
                    default: .attribute
                    }
                guard stack.count < limits.maximumDepth else {
                    throw error(.limitExceeded, "nesting deeper than \(limits.maximumDepth)")
                }
                if line.readableBytesView.elementsEqual([UInt8(ascii: "?")]), kind != .attribute, kind != .push {
                    stack.append(Frame(kind: kind, remaining: nil))
                    continue
                }
                let count = try integer(line, what: "count")
                if count == -1 && kind == .array {
                    value = .null
                    break
                }
                let multiplier: Int64 = (kind == .map || kind == .attribute) ? 2 : 1
                guard count >= 0, count <= Int64(limits.maximumAggregateCount) / multiplier else {
                    throw error(.limitExceeded, "aggregate count \(count) outside 0...\(Int64(limits.maximumAggregateCount) / multiplier)")
                }
                var frame = Frame(kind: kind, remaining: Int(count * multiplier))
                if count == 0 {
                    value = Self.build(frame)
                    if kind == .attribute {
                        try attach(attributes: [])
                        continue
                    }
                    break
                }
                frame.elements.reserveCapacity(Swift.min(Int(count * multiplier), 1024))
                stack.append(frame)
                continue
            case UInt8(ascii: "."):
                guard line.isEmpty, let top = stack.last, top.remaining == nil else {
                    throw error(.unexpected, "'.' outside a streamed aggregate")
                }
                if top.kind == .map && top.elements.count % 2 != 0 {
                    throw error(.malformed, "streamed map ended after a key without its value")
                }
                stack.removeLast()
                value = Self.build(top)
            case UInt8(ascii: "_"):
                guard line.isEmpty else { throw error(.malformed, "null with content") }
                value = .null
            case UInt8(ascii: "#"):
                switch line.readableBytesView.first {
                case UInt8(ascii: "t") where line.readableBytes == 1: value = .boolean(true)
                case UInt8(ascii: "f") where line.readableBytes == 1: value = .boolean(false)
                default: throw error(.malformed, "boolean must be #t or #f")
                }
            case UInt8(ascii: ","):
                value = .double(try double(line))
            case UInt8(ascii: "("):
                let digits = String(decoding: line.readableBytesView, as: UTF8.self)
                let body = digits.hasPrefix("-") || digits.hasPrefix("+") ? digits.dropFirst() : Substring(digits)
                guard !body.isEmpty, body.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                    throw error(.malformed, "big number \(digits.debugDescription) is not an integer")
                }
                value = .bigNumber(digits.hasPrefix("+") ? String(body) : digits)
            default:
                throw error(.unknownType, "unknown type byte 0x\(String(type, radix: 16))")
            }
            if let result = try complete(value) { return result }
        }
    }

    /// Adds a finished value to the aggregate being built; returns it when it is a whole reply.
    /// The open aggregate is extended in place and values are moved, not copied: each copy of a
    /// value holding slices costs reference counting.
    private mutating func complete(_ finished: consuming RESPValue) throws(RESPProtocolError) -> RESPValue? {
        var value = finished
        while true {
            let last = stack.count - 1
            guard last >= 0 else {
                if let attributes = topLevelAttributes {
                    topLevelAttributes = nil
                    value = .attributed(value, attributes: attributes)
                }
                return value
            }
            if let attributes = stack[last].pendingAttributes {
                stack[last].pendingAttributes = nil
                value = .attributed(value, attributes: attributes)
            }
            stack[last].elements.append(consume value)
            if let remaining = stack[last].remaining {
                stack[last].remaining = remaining - 1
                if remaining - 1 > 0 { return nil }
            } else {
                guard stack[last].elements.count <= limits.maximumAggregateCount else {
                    throw error(.limitExceeded, "streamed aggregate longer than \(limits.maximumAggregateCount)")
                }
                return nil
            }
            let top = stack.removeLast()
            if top.kind == .attribute {
                try attach(attributes: Self.pairs(top.elements))
                return nil
            }
            value = Self.build(top)
        }
    }

    /// An attribute applies to the next value at its level.
    private mutating func attach(attributes: [RESPPair]) throws(RESPProtocolError) {
        if stack.isEmpty {
            topLevelAttributes = (topLevelAttributes ?? []) + attributes
        } else {
            stack[stack.count - 1].pendingAttributes = (stack[stack.count - 1].pendingAttributes ?? []) + attributes
        }
    }

    private static func pairs(_ elements: [RESPValue]) -> [RESPPair] {
        stride(from: 0, to: elements.count - 1, by: 2).map { RESPPair(key: elements[$0], value: elements[$0 + 1]) }
    }

    private static func build(_ frame: consuming Frame) -> RESPValue {
        switch frame.kind {
        case .array: .array(frame.elements)
        case .set: .set(frame.elements)
        case .push: .push(frame.elements)
        case .map, .attribute: .map(pairs(frame.elements))
        }
    }

    /// The next line: its type byte and content (a slice). Resumes scanning where it stopped.
    private mutating func readLine(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> (UInt8, ByteBuffer)? {
        let available = buffer.readableBytes
        frameStart = consumed
        guard available > lineScanned else { return nil }
        let from = Swift.max(0, lineScanned)
        let searchLimit = Swift.min(available, limits.maximumLineLength + 3)
        var newline: Int?
        if searchLimit > from {
            // Scanned in place (memchr), without a slice of the buffer to search.
            let found = buffer.withUnsafeReadableBytes { Self.newline(in: $0, from: from, to: searchLimit) }
            if let found {
                newline = found
                bytesExamined += found - from + 1
            } else {
                bytesExamined += searchLimit - from
            }
        }
        guard let end = newline else {
            if available > limits.maximumLineLength + 2 {
                throw error(.limitExceeded, "line longer than \(limits.maximumLineLength) bytes")
            }
            lineScanned = available
            return nil
        }
        lineScanned = 0
        guard end >= 2, buffer.getInteger(at: end - 1, as: UInt8.self) == 13 else {
            throw error(.malformed, "line not ended by CRLF")
        }
        guard let type = buffer.getInteger(at: 0, as: UInt8.self), let content = buffer.getSlice(at: 1, count: end - 2) else {
            throw error(.malformed, "empty line")
        }
        buffer.moveReaderIndex(forwardBy: end + 1)
        consumed += end + 1
        return (type, content)
    }

    private func integer(_ line: ByteBuffer, what: String) throws(RESPProtocolError) -> Int64 {
        var value: Int64 = 0
        var negative = false
        var digits = 0
        for (index, byte) in line.readableBytesView.enumerated() {
            if index == 0 && (byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")) {
                negative = byte == UInt8(ascii: "-")
                continue
            }
            guard byte >= 48 && byte <= 57 else { throw error(.malformed, "\(what) \(Self.show(line)) is not an integer") }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(Int64(byte - 48)) : shifted.addingReportingOverflow(Int64(byte - 48))
            guard !overflow1 && !overflow2 else { throw error(.malformed, "\(what) \(Self.show(line)) does not fit in 64 bits") }
            value = next
            digits += 1
        }
        guard digits > 0 else { throw error(.malformed, "\(what) \(Self.show(line)) is not an integer") }
        return value
    }

    private func double(_ line: ByteBuffer) throws(RESPProtocolError) -> Double {
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        switch text.lowercased() {
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan", "-nan", "+nan": return .nan
        default: break
        }
        guard !text.isEmpty, text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 43 || $0 == 45 || $0 == 46 || $0 == 69 || $0 == 101 }),
            let value = Double(text)
        else { throw error(.malformed, "double \(Self.show(line)) does not parse") }
        return value
    }

    private static func show(_ bytes: ByteBuffer) -> String {
        String(decoding: bytes.readableBytesView.prefix(40), as: UTF8.self).debugDescription
    }

    private func error(_ kind: RESPProtocolError.Kind, _ message: String) -> RESPProtocolError {
        RESPProtocolError(kind: kind, offset: frameStart, message: message)
    }
}
