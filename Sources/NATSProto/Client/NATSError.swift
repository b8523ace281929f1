import Transport

/// The escaping every error text of the clients goes through, for the layers on NATSProto's API.
public typealias SafeText = Transport.SafeText

/// Everything the NATS client can fail with: a kind to switch on, a message that says what went
/// wrong, and the server involved (its URL with any password removed) when there is one.
public struct NATSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The client was used wrongly: an invalid subject, queue or option. Nothing was sent.
        case usage
        /// A payload (with its headers) larger than the server's max_payload. Nothing was sent.
        case maximumPayloadExceeded
        /// No server could be reached, or the connection broke.
        case connection
        /// TLS could not be set up as asked, or the server's certificate was refused.
        case tls
        /// The server refused the credentials (`-ERR 'Authorization Violation'` and the like).
        case authorization
        /// The server sent bytes that break the protocol.
        case protocolViolation
        /// The server reported an error (`-ERR`).
        case server
        /// The deadline passed.
        case timedOut
        /// The connection broke after the request was written and before its reply came: the
        /// request may have been processed. Retry only what is safe to repeat (a JetStream
        /// publish with a message id is).
        case interrupted
        /// A request found no subscriber on its subject (status 503).
        case noResponders
        /// Publishes buffered while reconnecting reached the configured bound.
        case reconnectBufferExceeded
        /// The client is closed (by ``NATSClient/close()``, a drain, or when reconnecting gave up).
        case closed
        /// The client is draining and takes no new subscriptions or requests.
        case draining
        /// The calling task was cancelled.
        case cancelled
    }

    /// What went wrong.
    public var kind: Kind
    /// A sentence that says what and where.
    public var message: String
    /// The server involved, password redacted.
    public var server: String?

    /// Creates an error.
    public init(_ kind: Kind, _ message: String, server: String? = nil) {
        self.kind = kind
        self.message = SafeText.escaped(message)
        self.server = server.map { SafeText.escaped($0, limit: 256) }
    }

    /// `message (server URL)`.
    public var description: String {
        if let server { return "\(SafeText.escaped(message)) (\(SafeText.escaped(server, limit: 256)))" }
        return SafeText.escaped(message)
    }

    static func usage(_ error: NATSUsageError) -> NATSError { NATSError(.usage, error.message) }
}
