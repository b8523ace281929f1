import Foundation
import NATSProto
import Transport

/// The headers JetStream reads on a publish.
public enum JetStreamHeader {
    /// Deduplication id: a second message with it within the duplicate window is not stored.
    public static let messageID = "Nats-Msg-Id"
    /// The stream that must store the message.
    public static let expectedStream = "Nats-Expected-Stream"
    /// The stream's last sequence must be this.
    public static let expectedLastSequence = "Nats-Expected-Last-Sequence"
    /// The stream's last message must have had this id.
    public static let expectedLastMessageID = "Nats-Expected-Last-Msg-Id"
    /// The last message on this subject must have this sequence (0: none may exist).
    public static let expectedLastSubjectSequence = "Nats-Expected-Last-Subject-Sequence"
    /// `sub` or `all`: the message replaces the subject's (or the stream's) earlier ones.
    public static let rollup = "Nats-Rollup"
    /// Per-message time to live (nats-server 2.11+).
    public static let ttl = "Nats-TTL"
}

/// What a publish expects of the stream, and how it retries.
public struct PublishOptions: Sendable {
    /// `Nats-Msg-Id`: a second message with the same id is not stored again (within the
    /// stream's duplicate window); with an id, a timed-out publish is retried too.
    public var messageID: String?
    public var expectedStream: String?
    public var expectedLastSequence: UInt64?
    public var expectedLastMessageID: String?
    public var expectedLastSubjectSequence: UInt64?
    /// `Nats-TTL`: the stream removes this message after the duration (whole seconds, at least
    /// one; the stream must allow it). nats-server 2.11+: refused before anything is sent on an
    /// older server.
    public var ttl: Duration?
    /// How often a publish that found no stream leader (503) — or, with a message id, timed out
    /// or was cut by a lost connection — is sent again, after `retryWait` each time.
    public var retryAttempts = 2
    public var retryWait: Duration = .milliseconds(250)

    public init(messageID: String? = nil) {
        self.messageID = messageID
    }

    /// `headers` with the expectations added.
    func apply(to headers: NATSHeaders?) -> NATSHeaders? {
        guard messageID != nil || expectedStream != nil || expectedLastSequence != nil || expectedLastMessageID != nil
            || expectedLastSubjectSequence != nil || ttl != nil
        else { return headers }
        var headers = headers ?? NATSHeaders()
        if let messageID { headers[JetStreamHeader.messageID] = messageID }
        if let expectedStream { headers[JetStreamHeader.expectedStream] = expectedStream }
        if let expectedLastSequence { headers[JetStreamHeader.expectedLastSequence] = String(expectedLastSequence) }
        if let expectedLastMessageID { headers[JetStreamHeader.expectedLastMessageID] = expectedLastMessageID }
        if let expectedLastSubjectSequence { headers[JetStreamHeader.expectedLastSubjectSequence] = String(expectedLastSubjectSequence) }
        if let ttl { headers[JetStreamHeader.ttl] = "\(ttl.components.seconds)s" }
        return headers
    }

    /// Refuses what the server cannot honour, before anything is sent.
    func check(on version: ServerVersion, subject: String) throws(JetStreamError) {
        guard let ttl else { return }
        guard version >= ServerVersion(2, 11) else {
            throw JetStreamError(.usage, message: "publish to \(subject) uses a per-message TTL (2.11), which nats-server \(version) does not have")
        }
        guard ttl >= .seconds(1), ttl.components.attoseconds == 0 else {
            throw JetStreamError(.usage, message: "publish to \(subject): a message TTL is whole seconds, at least one, not \(ttl)")
        }
    }
}

extension JetStreamContext {
    /// Publishes to a stream's subject and waits for the stream's acknowledgement. Throws the
    /// API's error when the stream refuses it (a failed expectation, a message too large …),
    /// and ``JetStreamError/Kind/noResponders`` when no stream stores `subject`.
    @discardableResult
    public func publish<Payload: Collection<UInt8> & Sendable>(
        _ payload: Payload, to subject: String, headers: NATSHeaders? = nil, options: PublishOptions = PublishOptions()
    ) async throws(JetStreamError) -> PubAck {
        if options.ttl != nil { try options.check(on: serverVersion, subject: subject) }
        let headers = options.apply(to: headers)
        var attempt = 0
        while true {
            do {
                let reply = try await client.request(payload, subject: subject, headers: headers, timeout: timeout)
                return try Self.decodePubAck(reply, operation: "publish to \(subject)")
            } catch let error as NATSError {
                // With a message id a repeat is deduplicated, so a publish that may have landed
                // (timed out, or cut by a lost connection) is safe to send again.
                let repeatable = error.kind == .timedOut || error.kind == .interrupted
                let retryable = error.kind == .noResponders || (repeatable && options.messageID != nil)
                guard retryable, attempt < options.retryAttempts else {
                    if error.kind == .noResponders {
                        throw JetStreamError(.noResponders, code: 503, message: "publish to \(subject): no stream stores it, or its stream has no leader")
                    }
                    throw JetStreamError.from(error, doing: "publish to \(subject)")
                }
            } catch let error as JetStreamError {
                throw error
            } catch {
                throw JetStreamError(.connection, message: "publish to \(subject): \(error)")
            }
            attempt += 1
            do { try await Task.sleep(for: options.retryWait) } catch { throw JetStreamError(.cancelled, message: "publish to \(subject) was cancelled") }
        }
    }

    /// Publishes a string's UTF-8 bytes and waits for the acknowledgement.
    @discardableResult
    public func publish(_ text: String, to subject: String, headers: NATSHeaders? = nil, options: PublishOptions = PublishOptions())
        async throws(JetStreamError) -> PubAck
    {
        try await publish(Array(text.utf8), to: subject, headers: headers, options: options)
    }

    /// The outcome of each message of a batch publish, in order.
    public typealias BatchResults = [Result<PubAck, JetStreamError>]

    /// Publishes `messages` with at most `window` acknowledgements outstanding and waits for
    /// all of them; each message's outcome is reported at its index.
    public func publish(batch messages: [(subject: String, payload: [UInt8])], window: Int = 4000) async -> BatchResults {
        var results = BatchResults(repeating: .failure(JetStreamError(.usage, message: "not sent")), count: messages.count)
        await withTaskGroup(of: (Int, Result<PubAck, JetStreamError>).self) { group in
            var next = 0
            func add() {
                let index = next
                let message = messages[index]
                group.addTask {
                    do throws(JetStreamError) {
                        return (index, .success(try await publish(message.payload, to: message.subject)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
                next += 1
            }
            while next < messages.count && next < max(1, window) { add() }
            for await (index, result) in group {
                results[index] = result
                if next < messages.count { add() }
            }
        }
        return results
    }
}
