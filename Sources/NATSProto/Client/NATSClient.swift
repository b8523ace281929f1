import Logging
import Synchronization
import Transport

/// A NATS client: one connection (re-established after a loss), shared by every task.
///
/// Publishes are appended to one outbound buffer and leave in coalesced writes from a writer
/// task, so a loop of publishes costs few system calls; while disconnected they are kept, up to
/// ``NATSConfiguration/reconnectBufferSize`` bytes, and sent after reconnecting. A reader task parses
/// what the server sends and hands messages to subscriptions and to waiting requests. Requests
/// share one wildcard inbox subscription. After a lost connection the client reconnects as
/// ADR-40 describes (the next server at once, then each server no sooner than
/// ``NATSConfiguration/reconnectWait`` plus jitter since its last attempt), restores every
/// subscription with its queue group and remaining auto-unsubscribe count, then sends what was
/// buffered. Everything that happens to the connection is reported on ``events``.
///
/// The decisions are ``NATSConnectionStateMachine``'s, a value without I/O; this class is its
/// driver: it owns the socket, the reader and writer tasks, the timers and the continuations of
/// waiting callers, and carries out what the machine returns.
///
/// Core NATS delivers at most once: bytes already handed to a connection that then breaks may be
/// lost. ``flush(timeout:)`` confirms that the server has processed everything sent before it.
/// End a client with ``drain()`` (graceful) or ``close()``.
public final class NATSClient: Sendable {
    /// The options the client was made with.
    public let options: NATSConfiguration
    /// Connection events: disconnects, reconnects, lame duck, server errors, slow consumers.
    /// One task should iterate it; events beyond 1,024 unread are dropped, oldest first.
    public let events: AsyncStream<NATSEvent>
    let eventSink: AsyncStream<NATSEvent>.Continuation
    /// The configuration's logger with this client's id as metadata.
    let logger: Logger
    /// Numbers the process's clients for the logs.
    static let clientIDs = Atomic<UInt64>(0)
    /// `_INBOX.<nuid>.`: reply subjects of this client's requests.
    let inboxPrefix: String
    let authentication: Authentication
    let state: Mutex<State>
    let requestTokens = Atomic<UInt64>(0)
    /// Requests whose reply their own caller read (``readReplyInline(_:token:deadline:)``).
    let repliesReadInline = Atomic<Int>(0)
    let tlsContext = Mutex<TLSContext?>(nil)

    // MARK: - State

    /// One TCP (or TLS) connection to a server; the client has at most one at a time.
    @usableFromInline
    final class Link: Sendable {
        let connection: Connection
        let generation: UInt64
        let server: NATSServerAddress

        init(connection: Connection, generation: UInt64, server: NATSServerAddress) {
            self.connection = connection
            self.generation = generation
            self.server = server
        }
    }

    /// What a caller does after queueing bytes, with what it needs to do it.
    @usableFromInline
    enum WriteWork: Sendable {
        case none
        /// Wake the writer task.
        case wake(UnsafeContinuation<Bool, Never>)
        /// The writer is idle: write this batch now, from the caller's task.
        case inline(Link, ByteBuffer)
    }

    /// The machine, and what carries out its decisions: the current link, the continuations of
    /// the parked writer and of waiting callers, timers, and the subscriptions' objects.
    struct State: ~Copyable {
        var machine: NATSConnectionStateMachine
        var link: Link?
        /// The current plain connection's reader, which a lone request may take over to read
        /// its reply on its own thread (see ``NATSClient/readReplyInline(_:token:deadline:)``).
        var inputReader: InputReader?
        var writer: UnsafeContinuation<Bool, Never>?
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []
        var flushWaiters: [UInt64: UnsafeContinuation<Result<Void, NATSError>, Never>] = [:]
        var flushTimers: [UInt64: ReactorTimer] = [:]
        var nextFlushID: UInt64 = 0
        var requestWaiters: [UInt64: UnsafeContinuation<Result<NATSMessage, NATSError>, Never>] = [:]
        var requestTimers: [UInt64: ReactorTimer] = [:]
        /// The subscriptions' objects, by sid (the machine keeps what a reconnect needs).
        var subscriptions: [UInt64: NATSSubscription] = [:]
        var pinger: Task<Void, Never>?
        /// The last subject a publish validated: a stream of publishes to one subject checks it
        /// once (a comparison of two small strings, or of one storage, is cheaper than the scan).
        var lastPublishSubject: String?

        /// Turns the machine's write action into the work to do after the lock.
        mutating func work(for action: NATSConnectionStateMachine.WriteAction) -> WriteWork {
            switch action {
            case .none:
                return .none
            case .wakeWriter:
                guard let writer = writer.take() else { return .none }
                return .wake(writer)
            case .writeInline(let batch):
                guard let link else { return .none }
                return .inline(link, batch)
            }
        }
    }

    /// Credentials parsed once, at creation.
    struct Authentication: Sendable {
        var nkey: NKeyPair?
        var jwt: String?
    }

    // MARK: - Creating

    private init(options: NATSConfiguration, pool: [NATSServerAddress], authentication: Authentication) {
        self.options = options
        self.authentication = authentication
        var logger = options.logger
        logger[metadataKey: "nats.client"] = "\(Self.clientIDs.add(1, ordering: .relaxed).newValue)"
        self.logger = logger
        var nuid = NUID()
        inboxPrefix = options.inboxPrefix + "." + nuid.next() + "."
        (events, eventSink) = AsyncStream.makeStream(of: NATSEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let limits = NATSConnectionStateMachine.Limits(
            reconnectBufferSize: options.reconnectBufferSize, maximumPingsOutstanding: options.maximumPingsOutstanding,
            allowReconnect: options.allowReconnect, useDiscoveredServers: options.useDiscoveredServers,
            randomizeServers: options.randomizeServers, failInterruptedRequests: options.failInterruptedRequests)
        state = Mutex(
            State(
                machine: NATSConnectionStateMachine(
                    servers: pool, maximumReconnectAttempts: options.maximumReconnectAttempts, inboxPrefix: inboxPrefix,
                    limits: limits)))
    }

    /// Connects to the first server of `options.servers` (in random order unless told otherwise)
    /// that answers and accepts the credentials. Each server is tried once; the error of the
    /// last one is thrown if none does.
    public static func connect(_ options: NATSConfiguration) async throws(NATSError) -> NATSClient {
        guard !options.servers.isEmpty else { throw NATSError(.usage, "no NATS server URL given") }
        var servers: [NATSServerAddress] = []
        for text in options.servers { servers.append(try NATSServerAddress(parsing: text)) }
        if options.randomizeServers { servers.shuffle() }
        try NATSSubject.validate(options.inboxPrefix + ".x", wildcards: false, as: "inbox prefix")

        var authentication = Authentication()
        if let path = options.credentialsFile {
            let credentials = try NATSCredentials(file: path)
            authentication.jwt = credentials.jwt
            do throws(NKeyError) {
                authentication.nkey = try NKeyPair(seed: credentials.seed)
            } catch {
                throw NATSError(.usage, "the seed in the credentials file \(path) is invalid: \(error.message)")
            }
        } else if let seed = options.nkeySeed {
            do throws(NKeyError) {
                authentication.nkey = try NKeyPair(seed: seed)
            } catch {
                throw NATSError(.usage, "the NKey seed is invalid: \(error.message)")
            }
        }

        let client = NATSClient(options: options, pool: servers, authentication: authentication)
        var lastError = NATSError(.connection, "no server to connect to")
        for server in servers {
            do throws(NATSError) {
                try await client.establish(server, reconnecting: false)
                client.startPinger()
                return client
            } catch {
                lastError = error
                client.state.withLock { $0.machine.connectAttemptFailed(server, now: Deadline.now.uptimeNanoseconds) }
            }
        }
        _ = client.state.withLock { $0.machine.close(reason: lastError) }
        client.eventSink.finish()
        throw lastError
    }

    /// Connects to one server URL with default options.
    public static func connect(url: String) async throws(NATSError) -> NATSClient {
        try await connect(NATSConfiguration(url: url))
    }

    // MARK: - Introspection

    /// The INFO of the server connected to (or last connected to).
    public var serverInfo: NATSServerInfo? { state.withLock { $0.machine.info } }
    /// Whether a connection is up right now.
    public var isConnected: Bool { state.withLock { $0.machine.phase == .connected } }
    /// Whether the client is closed for good.
    public var isClosed: Bool { state.withLock { $0.machine.phase == .closed } }
    /// The server connected to, as `nats://host:port` (no credentials).
    public var connectedServer: String? {
        state.withLock { $0.machine.phase == .connected ? $0.machine.server?.redacted : nil }
    }
    /// The servers in the pool, configured and discovered, as `nats://host:port`.
    public var knownServers: [String] { state.withLock { $0.machine.pool.servers.map(\.redacted) } }
    /// Messages and bytes in and out, and reconnects.
    public var statistics: NATSStatistics { state.withLock { $0.machine.statistics } }
    /// The largest payload (with headers) the server accepts.
    public var maximumPayload: Int { state.withLock { $0.machine.maximumPayload } }
    /// Bytes waiting in the outbound buffer (buffered while reconnecting, or not yet written).
    public var bufferedBytes: Int { state.withLock { $0.machine.outgoing.pending.readableBytes } }

    // MARK: - Events

    /// Logs an event at its level, then delivers it on ``events``.
    func report(_ event: NATSEvent) {
        switch event {
        case .disconnected(let server, let reason):
            let metadata: Logger.Metadata = ["nats.server": "\(server)", "error": "\(reason.map { "\($0)" } ?? "")"]
            if reason?.kind == .protocolViolation {
                logger.error("protocol violation; disconnected", metadata: metadata)
            } else {
                logger.warning("disconnected", metadata: metadata)
            }
        case .reconnected(let server):
            logger.info("reconnected", metadata: ["nats.server": "\(server)"])
        case .lameDuck(let server):
            logger.warning("the server entered lame-duck mode", metadata: ["nats.server": "\(server)"])
        case .serverError(let error):
            logger.warning("server error", metadata: ["error": "\(error)"])
        case .subscriptionGap(let subject, let sid):
            logger.info("subscription restored after a reconnect; messages may have been missed", metadata: ["subject": "\(subject)", "sid": "\(sid)"])
        case .slowConsumer(let subject, let sid, let dropped):
            logger.warning("slow consumer: messages dropped", metadata: ["subject": "\(subject)", "sid": "\(sid)", "dropped": "\(dropped)"])
        case .serversDiscovered(let servers):
            logger.debug("servers discovered", metadata: ["servers": "\(servers.joined(separator: ", "))"])
        case .closed(let reason):
            if let reason { logger.warning("closed", metadata: ["error": "\(reason)"]) } else { logger.debug("closed") }
        }
        eventSink.yield(event)
    }
}

/// Counters of a client's traffic.
public struct NATSStatistics: Sendable, Equatable {
    /// Messages received.
    public var inMessages = 0
    /// Payload bytes received.
    public var inBytes = 0
    /// Messages published.
    public var outMessages = 0
    /// Payload bytes published.
    public var outBytes = 0
    /// Times the connection was re-established.
    public var reconnects = 0
    /// Write system calls: fewer than operations sent, as writes are coalesced.
    public var writes = 0
}

extension NATSError {
    /// A closed-client error that keeps the underlying reason's kind in its message.
    func with(reason: NATSError) -> NATSError {
        NATSError(.closed, "the client closed: \(reason.message)", server: reason.server)
    }
}
