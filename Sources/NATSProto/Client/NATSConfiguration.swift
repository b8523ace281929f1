import Foundation
import Logging
import Transport

/// How a ``NATSClient`` connects, authenticates, keeps its connection alive and reconnects.
/// The defaults follow the reference client's.
public struct NATSConfiguration: Sendable {
    /// Server URLs: `nats://[user:password@|token@]host[:port]` or `tls://…` (TLS required);
    /// `host:port` alone means `nats://`. The port defaults to 4222.
    public var servers: [String]
    /// Try the servers in a random order (the default), spreading clients over a cluster.
    public var randomizeServers = true
    /// Add the servers a cluster advertises in INFO `connect_urls` to the pool.
    public var useDiscoveredServers = true
    /// The client's name, shown by the server's monitoring.
    public var name: String?
    /// Receive one's own publishes on matching subscriptions.
    public var echo = true

    /// User name and password, for servers whose URL carries none.
    public var user: String?
    /// The password that goes with ``user``.
    public var password: String?
    /// An authentication token, for servers whose URL carries none.
    public var token: String?
    /// An NKey user seed (`SU…`): the public key is sent and the server's nonce signed.
    public var nkeySeed: String?
    /// A `.creds` file holding a user JWT and its NKey seed (decentralised authentication).
    public var credentialsFile: String?

    /// TLS settings, used whenever TLS is: the URL is `tls://`, ``requireTLS`` is set, or the
    /// server requires it. Nil means the system's trust store with full verification.
    public var tls: TLSConfiguration?
    /// Refuse servers that do not offer TLS.
    public var requireTLS = false
    /// Start TLS before the server's INFO (servers 2.10.4+ with `handshake_first`).
    public var tlsHandshakeFirst = false

    /// Deadline for one connection attempt, handshake included.
    public var connectTimeout: Duration = .seconds(2)
    /// How often the client PINGs an idle server.
    public var pingInterval: Duration = .seconds(120)
    /// PINGs without a PONG after which the connection counts as dead.
    public var maximumPingsOutstanding = 2

    /// Reconnect after a lost connection (ADR-40); if false, the client closes instead.
    public var allowReconnect = true
    /// Failed attempts per server before it leaves the pool; a negative value retries forever.
    public var maximumReconnectAttempts = 60
    /// The least time between two attempts on the same server.
    public var reconnectWait: Duration = .seconds(2)
    /// Random time added to ``reconnectWait`` (plain connections).
    public var reconnectJitter: Duration = .milliseconds(100)
    /// Random time added to ``reconnectWait`` (TLS connections).
    public var reconnectJitterTLS: Duration = .seconds(1)
    /// Bytes of publishes kept while disconnected; past it, publishing throws
    /// ``NATSError/Kind/reconnectBufferExceeded``.
    public var reconnectBufferSize = 8 << 20
    /// Fail a request at once with ``NATSError/Kind/interrupted`` when the connection it was
    /// written to breaks. Its reply would have come to that connection's inbox interest, so it
    /// is almost always lost, and waiting for the timeout only delays the caller's retry. Set it
    /// to false for responders slower than a reconnect, whose replies can still arrive on the new
    /// connection. Requests still buffered when the connection breaks are sent after the
    /// reconnect either way.
    public var failInterruptedRequests = true

    /// Default pending limits of a new subscription.
    public var pendingLimits = NATSPendingLimits()
    /// How long ``NATSClient/drain()`` waits for subscriptions to be consumed.
    public var drainTimeout: Duration = .seconds(30)
    /// Prefix of reply subjects.
    public var inboxPrefix = "_INBOX"
    /// Where the client logs its lifecycle (connect, TLS, authentication, disconnects, reconnects,
    /// lame duck, server and protocol errors, slow consumers) with the server and its client id;
    /// never a credential or a payload. Silent by default.
    public var logger = Logger(label: "nats", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Options for `servers`; everything else at its default.
    public init(servers: [String] = ["nats://127.0.0.1:4222"]) {
        self.servers = servers
    }

    /// Options for one server URL.
    public init(url: String) {
        self.init(servers: [url])
    }
}

/// How many messages, and how many payload bytes, a subscription keeps for a consumer that has
/// not taken them yet. Past either, messages are dropped and a slow-consumer event is raised.
public struct NATSPendingLimits: Sendable, Equatable {
    /// Messages kept; a negative value means no limit.
    public var messages: Int
    /// Payload bytes kept; a negative value means no limit.
    public var bytes: Int

    /// The reference client's defaults: 524,288 messages and 64 MiB.
    public init(messages: Int = 512 * 1024, bytes: Int = 64 << 20) {
        self.messages = messages
        self.bytes = bytes
    }
}

/// A `.creds` file: a user JWT and the NKey seed that signs for it, each between dashed marker
/// lines (the layout `nsc` writes).
struct NATSCredentials: Sendable {
    var jwt: String
    var seed: String

    /// Reads and parses a credentials file.
    init(file path: String) throws(NATSError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NATSError(.usage, "cannot read the credentials file \(path): \(error.localizedDescription)")
        }
        try self.init(parsing: text, source: path)
    }

    /// Parses the text of a credentials file: the first framed block is the JWT, the second the seed.
    init(parsing text: String, source: String) throws(NATSError) {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
        func isMarker(_ line: String) -> Bool { line.hasPrefix("---") && line.hasSuffix("---") && line.count >= 6 }
        func isToken(_ line: String) -> Bool {
            !line.isEmpty && line.unicodeScalars.allSatisfy { $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "-_.=".unicodeScalars.contains($0) }
        }
        var blocks: [String] = []
        var index = 0
        while index + 2 < lines.count {
            if isMarker(lines[index]), isToken(lines[index + 1]), isMarker(lines[index + 2]) {
                blocks.append(lines[index + 1])
                index += 3
            } else {
                index += 1
            }
        }
        guard blocks.count >= 2 else {
            throw NATSError(.usage, "the credentials file \(source) holds \(blocks.count) of the 2 framed blocks (user JWT, then NKey seed)")
        }
        jwt = blocks[0]
        seed = blocks[1]
        guard seed.hasPrefix("SU") else {
            throw NATSError(.usage, "the second block of the credentials file \(source) is not a user NKey seed")
        }
    }
}
