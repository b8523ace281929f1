import NATSProto
import Transport

/// Where a consumed message comes from, read from its ack subject: either
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens) or
/// `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token>`
/// (12 tokens; domain `_` is none).
public struct MessageMetadata: Sendable, Equatable {
    public var domain: String?
    public var stream: String
    public var consumer: String
    /// How many times this message was delivered (1 the first time).
    public var deliveryCount: UInt64
    public var streamSequence: UInt64
    public var consumerSequence: UInt64
    /// When it was stored, in nanoseconds since 1970.
    public var timestamp: Int64
    /// Messages left for the consumer after this one.
    public var pending: UInt64

    /// Parses an ack subject; a subject of another shape is a typed error saying which. One pass
    /// over the bytes, no intermediate strings: it runs for every consumed message.
    public init(ackSubject subject: String) throws(JetStreamError) {
        var subject = subject
        let parsed = subject.withUTF8 { bytes in Self.parse(bytes) }
        switch parsed {
        case .success(let metadata): self = metadata
        case .failure(let failure): throw failure.error(for: subject)
        }
    }

    /// What was wrong with an ack subject, turned into the error once the subject is at hand.
    enum Failure: Error {
        case notAckSubject
        case tokenCount(Int)
        case notANumber(field: String, token: String)
        case noName

        func error(for subject: String) -> JetStreamError {
            let shown = subject.prefix(120)
            switch self {
            case .notAckSubject:
                return JetStreamError(.decoding, message: "\"\(shown)\" is not a JetStream ack subject ($JS.ACK.…)")
            case .tokenCount(let count):
                return JetStreamError(.decoding, message: "the ack subject \"\(shown)\" has \(count) tokens; 9, or 12 and more, were expected")
            case .notANumber(let field, let token):
                return JetStreamError(.decoding, message: "the ack subject \"\(shown)\" has \"\(token)\" as its \(field)")
            case .noName:
                return JetStreamError(.decoding, message: "the ack subject \"\(shown)\" names no stream or consumer")
            }
        }
    }

    private init(
        domain: String?, stream: String, consumer: String, deliveryCount: UInt64, streamSequence: UInt64, consumerSequence: UInt64,
        timestamp: Int64, pending: UInt64
    ) {
        self.domain = domain
        self.stream = stream
        self.consumer = consumer
        self.deliveryCount = deliveryCount
        self.streamSequence = streamSequence
        self.consumerSequence = consumerSequence
        self.timestamp = timestamp
        self.pending = pending
    }

    /// The numeric fields, in the order the subject holds them.
    private static let numberNames = ["delivery count", "stream sequence", "consumer sequence", "timestamp", "pending count"]

    /// The most tokens an ack subject is read for (12 and a few more the server may add).
    private static let maximumTokens = 16

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<MessageMetadata, Failure> {
        // "$JS.ACK." first.
        let prefix: [UInt8] = [0x24, 0x4A, 0x53, 0x2E, 0x41, 0x43, 0x4B]  // "$JS.ACK"
        guard bytes.count > prefix.count, bytes[prefix.count] == UInt8(ascii: "."), zip(bytes, prefix).allSatisfy({ $0 == $1 }) else {
            return .failure(bytes.count == prefix.count && zip(bytes, prefix).allSatisfy({ $0 == $1 }) ? .tokenCount(2) : .notAckSubject)
        }
        // Token boundaries after the prefix: starts[i] ..< ends[i].
        return withUnsafeTemporaryAllocation(of: (start: Int, end: Int).self, capacity: maximumTokens) { tokens in
            var count = 0
            var start = prefix.count + 1
            var total = 2
            for index in start...bytes.count where index == bytes.count || bytes[index] == UInt8(ascii: ".") {
                if count < maximumTokens { tokens[count] = (start, index) }
                count += 1
                total += 1
                start = index + 1
            }
            let first: Int
            var domain: String?
            switch total {
            case 9:
                first = 0
            case 12...:
                first = 2
                let token = tokens[0]
                let isNone = token.end - token.start == 1 && bytes[token.start] == UInt8(ascii: "_")
                domain = isNone ? nil : String(decoding: UnsafeBufferPointer(rebasing: bytes[token.start..<token.end]), as: UTF8.self)
            default:
                return .failure(.tokenCount(total))
            }
            func text(_ index: Int) -> String {
                let token = tokens[first + index]
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[token.start..<token.end]), as: UTF8.self)
            }
            func number(_ index: Int) -> UInt64? {
                let token = tokens[first + index]
                guard token.end > token.start, token.end - token.start <= 20 else { return nil }
                var value: UInt64 = 0
                for position in token.start..<token.end {
                    let digit = bytes[position] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
                    let (sum, carry) = shifted.addingReportingOverflow(UInt64(digit))
                    guard !overflow, !carry else { return nil }
                    value = sum
                }
                return value
            }
            var numbers: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
            for field in 0..<5 {
                guard let value = number(field + 2), field != 3 || value <= UInt64(Int64.max) else {
                    return .failure(.notANumber(field: numberNames[field], token: text(field + 2)))
                }
                switch field {
                case 0: numbers.0 = value
                case 1: numbers.1 = value
                case 2: numbers.2 = value
                case 3: numbers.3 = value
                default: numbers.4 = value
                }
            }
            let streamToken = tokens[first]
            let consumerToken = tokens[first + 1]
            guard streamToken.end > streamToken.start, consumerToken.end > consumerToken.start else { return .failure(.noName) }
            return .success(
                MessageMetadata(
                    domain: domain, stream: text(0), consumer: text(1), deliveryCount: numbers.0, streamSequence: numbers.1,
                    consumerSequence: numbers.2, timestamp: Int64(numbers.3), pending: numbers.4))
        }
    }
}

/// A message delivered by a consumer, with the ways to acknowledge it.
public struct JetStreamMessage: Sendable {
    /// The message as delivered (its reply subject is the ack subject).
    public let message: NATSMessage
    /// Its origin, from the ack subject.
    public let metadata: MessageMetadata
    let client: NATSClient

    /// The subject it was published to.
    public var subject: String { message.subject }
    /// Its headers.
    public var headers: NATSHeaders? { message.headers }
    /// Its payload.
    public var payload: ByteBuffer { message.payload }
    /// Its payload as UTF-8 text.
    public var text: String { message.text }

    init(_ message: NATSMessage, client: NATSClient) throws(JetStreamError) {
        guard let reply = message.replyTo else {
            throw JetStreamError(.decoding, message: "a message on \"\(message.subject)\" has no ack subject")
        }
        self.message = message
        self.metadata = try MessageMetadata(ackSubject: reply)
        self.client = client
    }

    private func send(_ body: String) async throws(JetStreamError) {
        guard let reply = message.replyTo else { return }
        do {
            try await client.publish(body, to: reply)
        } catch {
            throw JetStreamError.from(error, doing: "acknowledging stream sequence \(metadata.streamSequence)")
        }
    }

    /// Acknowledges it (`+ACK`); the server is not asked to confirm.
    public func ack() async throws(JetStreamError) { try await send("+ACK") }

    /// Acknowledges it and waits for the server to confirm it has the ack.
    public func doubleAck(timeout: Duration = .seconds(5)) async throws(JetStreamError) {
        guard let reply = message.replyTo else { return }
        do {
            _ = try await client.request("+ACK", subject: reply, timeout: timeout)
        } catch {
            throw JetStreamError.from(error, doing: "acknowledging stream sequence \(metadata.streamSequence)")
        }
    }

    /// Asks for redelivery, after `delay` when given (`-NAK`).
    public func nak(delay: Duration? = nil) async throws(JetStreamError) {
        if let delay { try await send("-NAK {\"delay\": \(delay.nanoseconds)}") } else { try await send("-NAK") }
    }

    /// Says the work goes on: the ack wait starts again (`+WPI`).
    public func inProgress() async throws(JetStreamError) { try await send("+WPI") }

    /// Stops redelivery for good (`+TERM`, with a reason on nats-server 2.10+; older servers
    /// do not read a reason, so none is sent to them).
    public func terminate(reason: String? = nil) async throws(JetStreamError) {
        let takesReason = ServerVersion(parsing: client.serverInfo?.version ?? "0") >= ServerVersion(2, 10)
        if let reason, !reason.isEmpty, takesReason { try await send("+TERM \(reason)") } else { try await send("+TERM") }
    }
}
