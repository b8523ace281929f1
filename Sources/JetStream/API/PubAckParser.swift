import NATSProto
import Transport

extension PubAck {
    /// An acknowledgement made by the client (the fast reader below, and tests).
    init(stream: String, sequence: UInt64, duplicate: Bool = false, domain: String? = nil) {
        self.stream = stream
        self.sequence = sequence
        self.duplicate = duplicate
        self.domain = domain
    }

    /// Reads the flat object a stream sends for a stored message (`{"stream":"S", "seq":1}`,
    /// with `duplicate` and `domain` when set) in one pass over the bytes, without Foundation's
    /// decoder: it is on the path of every publish. Anything else — an error object, escapes in
    /// a string, a nested value, a malformed document — gives nil, and the full decoder decides.
    static func parseFlat(_ bytes: UnsafeRawBufferPointer) -> PubAck? {
        var index = 0
        let count = bytes.count
        func skipSpace() {
            while index < count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        }
        /// A string without escapes, as the bytes between its quotes; nil for anything else.
        func string() -> UnsafeRawBufferPointer? {
            guard index < count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            var end = start
            while end < count, bytes[end] != UInt8(ascii: "\"") {
                if bytes[end] == UInt8(ascii: "\\") || bytes[end] < 0x20 { return nil }
                end += 1
            }
            guard end < count else { return nil }
            index = end + 1
            return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        }
        func equals(_ text: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
            text.count == literal.utf8CodeUnitCount
                && text.elementsEqual(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        }
        skipSpace()
        guard index < count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        var stream: String?
        var sequence: UInt64?
        var duplicate = false
        var domain: String?
        while true {
            skipSpace()
            guard index < count else { return nil }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                break
            }
            guard let key = string() else { return nil }
            skipSpace()
            guard index < count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            guard index < count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                guard let value = string() else { return nil }
                if equals(key, "stream") {
                    stream = String(decoding: value, as: UTF8.self)
                } else if equals(key, "domain") {
                    domain = String(decoding: value, as: UTF8.self)
                }
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                var number: UInt64 = 0
                while index < count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    let (times, overflowTimes) = number.multipliedReportingOverflow(by: 10)
                    let (sum, overflowSum) = times.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
                    guard !overflowTimes, !overflowSum else { return nil }
                    number = sum
                    index += 1
                }
                if equals(key, "seq") { sequence = number }
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                let isTrue = bytes[index] == UInt8(ascii: "t")
                let length = isTrue ? 4 : 5
                guard index + length <= count else { return nil }
                let word = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)])
                guard equals(word, isTrue ? "true" : "false") else { return nil }
                index += length
                if equals(key, "duplicate") { duplicate = isTrue }
            default:
                return nil  // an object, an array, null, a negative or fractional number: not the flat ack
            }
            skipSpace()
            guard index < count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] != UInt8(ascii: "}") {
                return nil
            }
        }
        skipSpace()
        guard index == count, let stream, let sequence else { return nil }
        return PubAck(stream: stream, sequence: sequence, duplicate: duplicate, domain: domain)
    }
}

extension JetStreamContext {
    /// A publish's answer: the fast flat reader for a plain acknowledgement, the full decoder
    /// (with the API's errors) for anything else.
    static func decodePubAck(_ reply: NATSMessage, operation: String) throws(JetStreamError) -> PubAck {
        if reply.status == nil, let ack = reply.payload.withUnsafeReadableBytes({ PubAck.parseFlat($0) }) { return ack }
        return try decode(PubAck.self, from: reply, operation: operation)
    }
}
