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

    /// Parses an ack subject; a subject of another shape is a typed error saying which.
    public init(ackSubject subject: String) throws(JetStreamError) {
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        guard tokens.count >= 2, tokens[0] == "$JS", tokens[1] == "ACK" else {
            throw JetStreamError(.decoding, message: "\"\(subject.prefix(120))\" is not a JetStream ack subject ($JS.ACK.…)")
        }
        let fields: ArraySlice<Substring>
        switch tokens.count {
        case 9:
            domain = nil
            fields = tokens[2...]
        case 12...:
            domain = tokens[2] == "_" ? nil : String(tokens[2])
            fields = tokens[4...]
        default:
            throw JetStreamError(.decoding, message: "the ack subject \"\(subject.prefix(120))\" has \(tokens.count) tokens; 9, or 12 and more, were expected")
        }
        let values = Array(fields)
        func number<T: FixedWidthInteger>(_ index: Int, _ name: String) throws(JetStreamError) -> T {
            guard let value = T(values[index]) else {
                throw JetStreamError(.decoding, message: "the ack subject \"\(subject.prefix(120))\" has \"\(values[index])\" as its \(name)")
            }
            return value
        }
        stream = String(values[0])
        consumer = String(values[1])
        deliveryCount = try number(2, "delivery count")
        streamSequence = try number(3, "stream sequence")
        consumerSequence = try number(4, "consumer sequence")
        timestamp = try number(5, "timestamp")
        pending = try number(6, "pending count")
        guard !stream.isEmpty, !consumer.isEmpty else {
            throw JetStreamError(.decoding, message: "the ack subject \"\(subject.prefix(120))\" names no stream or consumer")
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
