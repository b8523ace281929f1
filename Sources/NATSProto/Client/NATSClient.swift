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
    let tlsContext = Mutex<TLSContext?>(nil)

    /// Outbound bytes past which a publish waits for the writer.
    static let highWaterMark = 1 << 20

    // MARK: - State

    enum Phase: Sendable, Equatable {
        case connecting
        case connected
        case reconnecting
        case closed
    }

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

    /// A request between its PUB and its result.
    enum RequestSlot {
        /// Sent; the caller has not started waiting yet.
        case pending
        /// The caller waits.
        case waiting(UnsafeContinuation<Result<NATSMessage, NATSError>, Never>)
        /// Finished before the caller started waiting.
        case done(Result<NATSMessage, NATSError>)
    }

    /// What a caller does after queueing bytes.
    @usableFromInline
    enum WriteAction: Sendable {
        case none
        /// Wake the writer task.
        case wake(UnsafeContinuation<Bool, Never>)
        /// The writer is idle: write this batch now, from the caller's task.
        case inline(Link, ByteBuffer)
    }

    enum PongWaiter: Sendable {
        case keepalive
        case flush(UInt64)
    }

    struct State: ~Copyable {
        var phase = Phase.connecting
        var isDraining = false
        var closeReason: NATSError?
        var link: Link?
        var generation: UInt64 = 0
        var info: NATSServerInfo? {
            didSet { maximumPayload = info?.maximumPayload ?? 1 << 20 }
        }
        /// INFO's max_payload, kept apart: publishes read it without copying the whole INFO.
        var maximumPayload = 1 << 20
        var pool = NATSServerPool([], maximumAttempts: 0)

        /// Bytes to send (`outgoing.pending`) and the spare buffer they rotate with.
        var outgoing = WriteQueue(capacity: 64 << 10, recycleLimit: 4 * NATSClient.highWaterMark)
        /// PINGs in `outgoing.pending` (not yet handed to a connection).
        var queuedPings = 0
        var writerParked: UnsafeContinuation<Bool, Never>?
        var writerBusy = false
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []

        /// One entry per PING sent or queued, in order.
        var pongs: [PongWaiter] = []
        var pongsHead = 0
        var flushWaiters: [UInt64: UnsafeContinuation<Result<Void, NATSError>, Never>] = [:]
        var nextFlushID: UInt64 = 0
        var pingsOutstanding = 0

        var subscriptions: [UInt64: NATSSubscription] = [:]
        var nextSID: UInt64 = 1
        var muxSID: UInt64?
        var requests: [UInt64: RequestSlot] = [:]
        var requestTimers: [UInt64: ReactorTimer] = [:]
        var flushTimers: [UInt64: ReactorTimer] = [:]
        var pinger: Task<Void, Never>?

        var statistics = NATSStatistics()

        var pendingPongCount: Int { pongs.count - pongsHead }

        mutating func popPong() -> PongWaiter? {
            guard pongsHead < pongs.count else { return nil }
            let first = pongs[pongsHead]
            pongsHead += 1
            if pongsHead == pongs.count {
                pongs.removeAll(keepingCapacity: true)
                pongsHead = 0
            }
            return first
        }

        /// Takes the writer's continuation if it is parked, to resume it after the lock.
        mutating func takeParkedWriter() -> UnsafeContinuation<Bool, Never>? {
            // While a caller writes inline it holds the turn; it wakes the writer when done.
            guard phase == .connected, !writerBusy, let writer = writerParked else { return nil }
            writerParked = nil
            return writer
        }

        /// For a lone latency-bound operation: when the writer task is idle, the caller takes the
        /// outbound bytes and writes them itself, which saves a thread hop; otherwise the writer
        /// is woken as usual.
        mutating func claimInlineWrite() -> WriteAction {
            guard phase == .connected, let link, writerParked != nil, !writerBusy, outgoing.pending.readableBytes <= 64 << 10 else {
                return takeParkedWriter().map { .wake($0) } ?? .none
            }
            return .inline(link, takeBatch())
        }

        /// The pending bytes, for whoever now holds the write turn.
        mutating func takeBatch() -> ByteBuffer {
            writerBusy = true
            queuedPings = 0
            statistics.writes &+= 1
            return outgoing.takePending()
        }

        // The checks below are `mutating` though they change nothing: a non-mutating method on
        // this noncopyable state, reached through the lock, is handed a bitwise copy of all of it
        // (some 500 bytes per call on the publish path); a mutating one gets its address.

        /// Refuses an operation on a closed client.
        mutating func checkOpen() throws(NATSError) {
            if phase == .closed {
                throw closeReason.map { NATSError(.closed, "the client is closed: \($0.message)", server: $0.server) }
                    ?? NATSError(.closed, "the client is closed")
            }
        }

        /// Refuses a message larger than the server's max_payload.
        mutating func checkPayload(_ size: Int) throws(NATSError) {
            if size > maximumPayload {
                throw NATSError(
                    .maximumPayloadExceeded, "a message of \(size) bytes exceeds the server's max_payload of \(maximumPayload) bytes",
                    server: link?.server.redacted)
            }
        }

        /// Refuses bytes the outbound buffer cannot take now.
        mutating func checkRoom(for size: Int, bound: Int) throws(NATSError) {
            if phase != .connected, outgoing.pending.readableBytes + size > bound {
                throw NATSError(
                    .reconnectBufferExceeded,
                    "\(outgoing.pending.readableBytes) bytes are already buffered while reconnecting; \(size) more exceed the bound of \(bound)")
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
        var state = State()
        state.pool = NATSServerPool(pool, maximumAttempts: options.maximumReconnectAttempts)
        self.state = Mutex(state)
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
                client.state.withLock { $0.pool.attempted(server, at: Deadline.now.uptimeNanoseconds) }
            }
        }
        client.state.withLock { $0.phase = .closed }
        client.eventSink.finish()
        throw lastError
    }

    /// Connects to one server URL with default options.
    public static func connect(url: String) async throws(NATSError) -> NATSClient {
        try await connect(NATSConfiguration(url: url))
    }

    // MARK: - Introspection

    /// The INFO of the server connected to (or last connected to).
    public var serverInfo: NATSServerInfo? { state.withLock { $0.info } }
    /// Whether a connection is up right now.
    public var isConnected: Bool { state.withLock { $0.phase == .connected } }
    /// Whether the client is closed for good.
    public var isClosed: Bool { state.withLock { $0.phase == .closed } }
    /// The server connected to, as `nats://host:port` (no credentials).
    public var connectedServer: String? { state.withLock { $0.phase == .connected ? $0.link?.server.redacted : nil } }
    /// The servers in the pool, configured and discovered, as `nats://host:port`.
    public var knownServers: [String] { state.withLock { $0.pool.servers.map(\.redacted) } }
    /// Messages and bytes in and out, and reconnects.
    public var statistics: NATSStatistics { state.withLock { $0.statistics } }
    /// The largest payload (with headers) the server accepts.
    public var maximumPayload: Int { state.withLock { $0.maximumPayload } }
    /// Bytes waiting in the outbound buffer (buffered while reconnecting, or not yet written).
    public var bufferedBytes: Int { state.withLock { $0.outgoing.pending.readableBytes } }

    // MARK: - Publishing

    /// Publishes `payload` to `subject`. Returns once the message is in the outbound buffer
    /// (waiting only while that buffer is over 1 MiB); ``flush(timeout:)`` confirms delivery to
    /// the server. Throws before sending anything for an invalid subject, a message over the
    /// server's max_payload, or a full reconnect buffer.
    @inlinable
    public func publish<Payload: Collection<UInt8>>(
        _ payload: Payload, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil
    ) async throws(NATSError) {
        try await send(payload, to: subject, replyTo: replyTo, headers: headers, promptly: false)
    }

    /// Answers a request: publishes `payload` to the message's reply subject. A reply is written
    /// at once from the calling task when the writer is idle (latency before batching).
    @inlinable
    public func respond<Payload: Collection<UInt8>>(to request: NATSMessage, with payload: Payload, headers: NATSHeaders? = nil)
        async throws(NATSError)
    {
        guard let replyTo = request.replyTo else {
            throw NATSError(.usage, "the message on \"\(request.subject)\" has no reply subject to respond to")
        }
        try await send(payload, to: replyTo, replyTo: nil, headers: headers, promptly: true)
    }

    /// Answers a request with a buffer's readable bytes.
    public func respond(to request: NATSMessage, with payload: ByteBuffer, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await respond(to: request, with: payload.readableBytesView, headers: headers)
    }

    /// Answers a request with a string's UTF-8 bytes.
    public func respond(to request: NATSMessage, with text: String, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await respond(to: request, with: text.utf8, headers: headers)
    }

    @inlinable
    func send<Payload: Collection<UInt8>>(
        _ payload: Payload, to subject: String, replyTo: String?, headers: NATSHeaders?, promptly: Bool
    ) async throws(NATSError) {
        // The generic part stays here, specialised in the caller; the work is not generic.
        var failure: NATSError?
        var queued = payload.withContiguousStorageIfAvailable { bytes in
            enqueuePublish(UnsafeRawBufferPointer(bytes), subject: subject, replyTo: replyTo, headers: headers, promptly: promptly, failure: &failure)
        }
        if queued == nil, failure == nil {
            queued = Array(payload).withUnsafeBytes { bytes in
                enqueuePublish(bytes, subject: subject, replyTo: replyTo, headers: headers, promptly: promptly, failure: &failure)
            }
        }
        if let failure { throw failure }
        if let queued = queued ?? nil { await complete(queued) }
    }

    /// What a publish left to do once its bytes were queued.
    @usableFromInline
    struct Queued: Sendable {
        let action: WriteAction
        let mustWait: Bool
    }

    /// Appends a PUB (or HPUB) to the outbound buffer; what is left to do, if anything. A
    /// refusal is stored in `failure` (a closure of `withContiguousStorageIfAvailable` cannot
    /// throw a typed error).
    @usableFromInline
    func enqueuePublish(
        _ payload: UnsafeRawBufferPointer, subject: String, replyTo: String?, headers: NATSHeaders?, promptly: Bool,
        failure: inout NATSError?
    ) -> Queued? {
        do throws(NATSError) {
            try NATSSubject.validate(subject, wildcards: false, as: "subject")
            if let replyTo { try NATSSubject.validate(replyTo, wildcards: false, as: "reply subject") }
            var headerLength = 0
            if let headers, !headers.isEmpty {
                guard let length = headers.encodedLength() else {
                    throw NATSError(.usage, "a header name or value holds characters a header cannot carry")
                }
                headerLength = length
            }
            let payloadLength = payload.count
            return try state.withLock { state throws(NATSError) -> Queued? in
                    try state.checkOpen()
                    try state.checkPayload(payloadLength + headerLength)
                    try state.checkRoom(for: payloadLength + headerLength + subject.utf8.count + 32, bound: options.reconnectBufferSize)
                    NATSClientOperation.writePublish(
                        subject: subject, replyTo: replyTo, replyToken: nil, headers: headerLength > 0 ? headers : nil,
                        headerLength: headerLength, payload: payload, into: &state.outgoing.pending)
                    state.statistics.outMessages &+= 1
                    state.statistics.outBytes &+= payloadLength
                    let mustWait = state.phase == .connected && state.outgoing.pending.readableBytes >= Self.highWaterMark
                    if promptly { return Queued(action: state.claimInlineWrite(), mustWait: mustWait) }
                    if let writer = state.takeParkedWriter() { return Queued(action: .wake(writer), mustWait: mustWait) }
                    return mustWait ? Queued(action: .none, mustWait: true) : nil
                }
        } catch {
            failure = error
            return nil
        }
    }

    /// Wakes the writer or writes inline, then waits for room if the outbound buffer is full.
    @usableFromInline
    func complete(_ queued: Queued) async {
        await perform(queued.action)
        if queued.mustWait { await waitForRoom() }
    }

    /// Publishes a buffer's readable bytes.
    public func publish(_ payload: ByteBuffer, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await publish(payload.readableBytesView, to: subject, replyTo: replyTo, headers: headers)
    }

    /// Publishes a string's UTF-8 bytes.
    public func publish(_ text: String, to subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil) async throws(NATSError) {
        try await publish(text.utf8, to: subject, replyTo: replyTo, headers: headers)
    }

    func waitForRoom() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.phase != .connected || state.outgoing.pending.readableBytes < Self.highWaterMark { return true }
                state.capacityWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    // MARK: - Subscribing

    /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given. The SUB is
    /// sent with the next write; ``flush(timeout:)`` confirms the server has it.
    public func subscribe(to subject: String, queue: String? = nil, pendingLimits: NATSPendingLimits? = nil) async throws(NATSError)
        -> NATSSubscription
    {
        try NATSSubject.validate(subject, wildcards: true, as: "subject")
        if let queue {
            do throws(NATSUsageError) { try NATSSubject.validateQueue(queue) } catch { throw .usage(error) }
        }
        let (subscription, writer) = try state.withLock { state throws(NATSError) -> (NATSSubscription, UnsafeContinuation<Bool, Never>?) in
            try state.checkOpen()
            if state.isDraining { throw NATSError(.draining, "the client is draining and takes no new subscriptions") }
            let sid = state.nextSID
            state.nextSID += 1
            let subscription = NATSSubscription(
                client: self, subject: subject, queue: queue, sid: sid, limits: pendingLimits ?? options.pendingLimits)
            state.subscriptions[sid] = subscription
            // While disconnected, the SUB goes out with every other one after reconnecting.
            guard state.phase == .connected else { return (subscription, nil) }
            NATSClientOperation.writeSubscribe(subject: subject, queue: queue, sid: sid, into: &state.outgoing.pending)
            return (subscription, state.takeParkedWriter())
        }
        writer?.resume(returning: true)
        return subscription
    }

    func unsubscribe(_ subscription: NATSSubscription, after maximum: Int?) async throws(NATSError) {
        if let maximum, subscription.setMaximum(maximum) {
            removeSubscription(subscription, sendUnsubscribe: true)
            return
        }
        let writer = try state.withLock { state throws(NATSError) -> UnsafeContinuation<Bool, Never>? in
            try state.checkOpen()
            guard state.subscriptions[subscription.sid] != nil else { return nil }
            if maximum == nil { state.subscriptions[subscription.sid] = nil }
            guard state.phase == .connected else { return nil }
            NATSClientOperation.unsubscribe(sid: subscription.sid, after: maximum, into: &state.outgoing.pending)
            return state.takeParkedWriter()
        }
        writer?.resume(returning: true)
        if maximum == nil { subscription.finish(.finished, discarding: true) }
    }

    /// Forgets a subscription that ended (auto-unsubscribe count reached).
    func removeSubscription(_ subscription: NATSSubscription, sendUnsubscribe: Bool) {
        let writer = state.withLock { state -> UnsafeContinuation<Bool, Never>? in
            guard state.subscriptions.removeValue(forKey: subscription.sid) != nil else { return nil }
            guard sendUnsubscribe, state.phase == .connected else { return nil }
            NATSClientOperation.unsubscribe(sid: subscription.sid, into: &state.outgoing.pending)
            return state.takeParkedWriter()
        }
        writer?.resume(returning: true)
    }

    func drain(_ subscription: NATSSubscription) async throws(NATSError) {
        let writer = try state.withLock { state throws(NATSError) -> UnsafeContinuation<Bool, Never>? in
            try state.checkOpen()
            guard state.subscriptions.removeValue(forKey: subscription.sid) != nil, state.phase == .connected else { return nil }
            NATSClientOperation.unsubscribe(sid: subscription.sid, into: &state.outgoing.pending)
            return state.takeParkedWriter()
        }
        writer?.resume(returning: true)
        // The PONG comes after every message the server sent before it saw the UNSUB.
        defer { subscription.finish(.finished, discarding: false) }
        try await flush(timeout: options.drainTimeout)
    }

    // MARK: - Request / reply

    /// Sends a request and waits for the first reply, over the client's one inbox subscription
    /// (`_INBOX.<nuid>.*`, made on first use). Throws ``NATSError/Kind/noResponders`` when no
    /// one subscribes to `subject` and ``NATSError/Kind/timedOut`` when no reply comes in time.
    public func request<Payload: Collection<UInt8>>(
        _ payload: Payload, subject: String, headers: NATSHeaders? = nil, timeout: Duration = .seconds(5)
    ) async throws(NATSError) -> NATSMessage {
        try NATSSubject.validate(subject, wildcards: false, as: "subject")
        var headerLength = 0
        if let headers, !headers.isEmpty {
            guard let length = headers.encodedLength() else {
                throw NATSError(.usage, "a header name or value holds characters a header cannot carry")
            }
            headerLength = length
        }
        let token = requestTokens.wrappingAdd(1, ordering: .relaxed).newValue
        let deadline = Deadline.after(timeout)
        let payloadLength = payload.count
        // Queue the PUB with a slot for the reply; write it (inline when the writer is idle);
        // then wait, unless the reply or an error already filled the slot.
        let queued = state.withLock { state -> Result<WriteAction, NATSError> in
            do throws(NATSError) {
                try state.checkOpen()
                if state.isDraining { throw NATSError(.draining, "the client is draining and sends no new requests") }
                try state.checkPayload(payloadLength + headerLength)
                try state.checkRoom(for: payloadLength + headerLength + 128, bound: options.reconnectBufferSize)
            } catch {
                return .failure(error)
            }
            if state.muxSID == nil {
                let sid = state.nextSID
                state.nextSID += 1
                state.muxSID = sid
                if state.phase == .connected {
                    NATSClientOperation.writeSubscribe(subject: inboxPrefix + "*", queue: nil, sid: sid, into: &state.outgoing.pending)
                }
            }
            state.requests[token] = .pending
            NATSClientOperation.writePublish(
                subject: subject, replyTo: inboxPrefix, replyToken: token, headers: headerLength > 0 ? headers : nil,
                headerLength: headerLength, payload: payload, into: &state.outgoing.pending)
            state.statistics.outMessages &+= 1
            state.statistics.outBytes &+= payloadLength
            return .success(state.claimInlineWrite())
        }
        switch queued {
        case .failure(let error): throw error
        case .success(let action): await perform(action)
        }
        let timer = Reactor.shared.schedule(at: deadline) { [self] in
            finishRequest(token, .failure(NATSError(.timedOut, "no reply to the request on \"\(subject)\" within \(timeout)")))
        }
        state.withLock { state in
            if state.requests[token] != nil { state.requestTimers[token] = timer } else { timer.cancel() }
        }
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<NATSMessage, NATSError>, Never>) in
                let ready = state.withLock { state -> Result<NATSMessage, NATSError>? in
                    switch state.requests[token] {
                    case .done(let result)?:
                        state.requests[token] = nil
                        return result
                    case .pending?:
                        state.requests[token] = .waiting(continuation)
                        return nil
                    case .waiting?, nil:
                        return .failure(NATSError(.closed, "the client closed before the reply to \"\(subject)\""))
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finishRequest(token, .failure(NATSError(.cancelled, "the request to \"\(subject)\" was cancelled")))
        }
        return try result.get()
    }

    /// Sends a request with a string payload.
    public func request(_ text: String, subject: String, headers: NATSHeaders? = nil, timeout: Duration = .seconds(5)) async throws(NATSError)
        -> NATSMessage
    {
        try await request(text.utf8, subject: subject, headers: headers, timeout: timeout)
    }

    /// Completes a request once: with its reply, its timeout, a cancellation or the close.
    func finishRequest(_ token: UInt64, _ result: Result<NATSMessage, NATSError>) {
        let (waiter, timer) = state.withLock { state -> (UnsafeContinuation<Result<NATSMessage, NATSError>, Never>?, ReactorTimer?) in
            switch state.requests[token] {
            case .pending?:
                state.requests[token] = .done(result)
            case .waiting(let continuation)?:
                state.requests[token] = nil
                return (continuation, state.requestTimers.removeValue(forKey: token))
            case .done?, nil:
                return (nil, nil)
            }
            return (nil, state.requestTimers.removeValue(forKey: token))
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }

    /// Wakes the writer, or writes a batch from the calling task (see ``State/claimInlineWrite()``).
    func perform(_ action: WriteAction) async {
        switch action {
        case .none:
            return
        case .wake(let writer):
            writer.resume(returning: true)
        case .inline(let link, let batch):
            var written: ByteBuffer? = batch
            do {
                try await link.connection.write(batch)
            } catch {
                written = nil
                linkFailed(link, Self.connectionError(error, link.server, doing: "writing"))
            }
            let writer = state.withLock { state -> UnsafeContinuation<Bool, Never>? in
                guard state.link === link else { return nil }
                state.writerBusy = false
                if let written = written.take() { state.outgoing.recycle(written) }
                return state.outgoing.pending.isEmpty ? nil : state.takeParkedWriter()
            }
            writer?.resume(returning: true)
        }
    }

    // MARK: - Flush

    /// Sends a PING after everything queued so far and waits for the PONG: when it returns, the
    /// server has processed every publish and subscription made before the call. A connection
    /// lost meanwhile is waited out (the PING is sent again after reconnecting) until `timeout`.
    public func flush(timeout: Duration = .seconds(10)) async throws(NATSError) {
        let deadline = Deadline.after(timeout)
        while true {
            do throws(NATSError) {
                try await pingAndWait(deadline: deadline, timeout: timeout)
                return
            } catch where error.kind == .connection && !deadline.hasPassed && !isClosed {
                continue
            }
        }
    }

    private func pingAndWait(deadline: Deadline, timeout: Duration) async throws(NATSError) {
        let id = state.withLock { state -> UInt64 in
            state.nextFlushID &+= 1
            return state.nextFlushID
        }
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<Void, NATSError>, Never>) in
                let outcome = state.withLock { state -> Result<UnsafeContinuation<Bool, Never>?, NATSError> in
                    do throws(NATSError) {
                        try state.checkOpen()
                    } catch {
                        return .failure(error)
                    }
                    if Task.isCancelled { return .failure(NATSError(.cancelled, "flush was cancelled")) }
                    NATSClientOperation.ping(into: &state.outgoing.pending)
                    state.queuedPings += 1
                    state.pongs.append(.flush(id))
                    state.flushWaiters[id] = continuation
                    return .success(state.takeParkedWriter())
                }
                switch outcome {
                case .success(let writer):
                    writer?.resume(returning: true)
                    let timer = Reactor.shared.schedule(at: deadline) { [self] in
                        finishFlush(id, .failure(NATSError(.timedOut, "no PONG within \(timeout) of the flush")))
                    }
                    // Whoever completes the flush first cancels the timer.
                    state.withLock { state in
                        if state.flushWaiters[id] != nil { state.flushTimers[id] = timer } else { timer.cancel() }
                    }
                case .failure(let error):
                    continuation.resume(returning: .failure(error))
                }
            }
        } onCancel: {
            finishFlush(id, .failure(NATSError(.cancelled, "flush was cancelled")))
        }
        try result.get()
    }

    func finishFlush(_ id: UInt64, _ result: Result<Void, NATSError>) {
        let (waiter, timer) = state.withLock { state in
            (state.flushWaiters.removeValue(forKey: id), state.flushTimers.removeValue(forKey: id))
        }
        timer?.cancel()
        waiter?.resume(returning: result)
    }

    // MARK: - Drain and close

    /// Ends the client gracefully: every subscription stops its interest, receives what the
    /// server had already sent it and ends once consumed; pending requests get their replies;
    /// then everything published is flushed and the connection closed. New subscriptions and
    /// requests are refused meanwhile; publishes are still accepted. Bounded by
    /// ``NATSConfiguration/drainTimeout``; the client is closed however it ends.
    public func drain() async throws(NATSError) {
        let deadline = Deadline.after(options.drainTimeout)
        let (subscriptions, writer) = try state.withLock { state throws(NATSError) -> ([NATSSubscription], UnsafeContinuation<Bool, Never>?) in
            try state.checkOpen()
            state.isDraining = true
            let subscriptions = Array(state.subscriptions.values)
            state.subscriptions.removeAll()
            guard state.phase == .connected else { return (subscriptions, nil) }
            for subscription in subscriptions {
                NATSClientOperation.unsubscribe(sid: subscription.sid, into: &state.outgoing.pending)
            }
            return (subscriptions, state.takeParkedWriter())
        }
        writer?.resume(returning: true)
        var failure: NATSError?
        do throws(NATSError) {
            try await flush(timeout: remaining(until: deadline))
        } catch {
            failure = error
        }
        for subscription in subscriptions { subscription.finish(.finished, discarding: false) }
        // Wait for the consumers, and for replies to requests made before the drain.
        while !deadline.hasPassed {
            let requestsPending = state.withLock { !$0.requests.isEmpty }
            if !requestsPending && subscriptions.allSatisfy(\.isConsumed) { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        if failure == nil {
            do throws(NATSError) {
                try await flush(timeout: remaining(until: deadline))
            } catch {
                failure = error
            }
        }
        await close()
        if let failure, failure.kind != .closed { throw failure }
        if deadline.hasPassed { throw NATSError(.timedOut, "drain did not finish within \(options.drainTimeout)") }
    }

    /// Closes the client: what is already in the outbound buffer is written (for up to a second),
    /// then the connection is closed. Subscriptions end, waiting requests and flushes fail with
    /// ``NATSError/Kind/closed``, and ``events`` finishes.
    public func close() async {
        let deadline = Deadline.after(.seconds(1))
        while !deadline.hasPassed {
            let idle = state.withLock { state -> Bool in
                state.phase != .connected || (state.outgoing.pending.isEmpty && !state.writerBusy)
            }
            if idle { break }
            try? await Task.sleep(for: .milliseconds(1))
        }
        shutDown(reason: nil)
    }

    private func remaining(until deadline: Deadline) -> Duration {
        let now = Deadline.now.uptimeNanoseconds
        return .nanoseconds(Int64(clamping: deadline.uptimeNanoseconds > now ? deadline.uptimeNanoseconds - now : 0))
    }

    /// Logs an event at its level, then delivers it on ``events``.
    func report(_ event: NATSEvent) {
        switch event {
        case .disconnected(let server, let reason):
            if reason?.kind == .protocolViolation {
                logger.error("protocol violation; disconnected", metadata: ["nats.server": "\(server)", "error": "\(reason.map { "\($0)" } ?? "")"])
            } else {
                logger.warning("disconnected", metadata: ["nats.server": "\(server)", "error": "\(reason.map { "\($0)" } ?? "")"])
            }
        case .reconnected(let server):
            logger.info("reconnected", metadata: ["nats.server": "\(server)"])
        case .lameDuck(let server):
            logger.warning("the server entered lame-duck mode", metadata: ["nats.server": "\(server)"])
        case .serverError(let error):
            logger.warning("server error", metadata: ["error": "\(error)"])
        case .slowConsumer(let subject, let sid, let dropped):
            logger.warning("slow consumer: messages dropped", metadata: ["subject": "\(subject)", "sid": "\(sid)", "dropped": "\(dropped)"])
        case .serversDiscovered(let servers):
            logger.debug("servers discovered", metadata: ["servers": "\(servers.joined(separator: ", "))"])
        case .closed(let reason):
            if let reason { logger.warning("closed", metadata: ["error": "\(reason)"]) } else { logger.debug("closed") }
        }
        eventSink.yield(event)
    }

    /// Closes for good, failing everyone who waits.
    func shutDown(reason: NATSError?) {
        let taken = state.withLock { state -> ShutDownWork? in
            guard state.phase != .closed else { return nil }
            state.phase = .closed
            state.closeReason = reason
            var work = ShutDownWork()
            work.link = state.link
            state.link = nil
            work.writer = state.writerParked
            state.writerParked = nil
            work.capacityWaiters = state.capacityWaiters
            state.capacityWaiters.removeAll()
            work.flushes = Array(state.flushWaiters.values)
            state.flushWaiters.removeAll()
            for slot in state.requests.values {
                if case .waiting(let continuation) = slot { work.requests.append(continuation) }
            }
            state.requests.removeAll()
            work.timers = Array(state.requestTimers.values) + Array(state.flushTimers.values)
            state.requestTimers.removeAll()
            state.flushTimers.removeAll()
            work.subscriptions = Array(state.subscriptions.values)
            state.subscriptions.removeAll()
            state.pongs.removeAll()
            state.pongsHead = 0
            state.outgoing.pending.clear()
            work.pinger = state.pinger
            state.pinger = nil
            return work
        }
        guard let taken else { return }
        let error = reason.map { NATSError(.closed, "the client closed: \($0.message)", server: $0.server) }
            ?? NATSError(.closed, "the client was closed")
        taken.pinger?.cancel()
        for timer in taken.timers { timer.cancel() }
        taken.link?.connection.close()
        taken.writer?.resume(returning: false)
        for waiter in taken.capacityWaiters { waiter.resume() }
        for waiter in taken.flushes { waiter.resume(returning: .failure(error)) }
        for waiter in taken.requests { waiter.resume(returning: .failure(error)) }
        for subscription in taken.subscriptions {
            subscription.finish(reason.map { .failed(error.with(reason: $0)) } ?? .finished, discarding: false)
        }
        report(.closed(reason: reason))
        eventSink.finish()
    }

    struct ShutDownWork {
        var link: Link?
        var writer: UnsafeContinuation<Bool, Never>?
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []
        var flushes: [UnsafeContinuation<Result<Void, NATSError>, Never>] = []
        var requests: [UnsafeContinuation<Result<NATSMessage, NATSError>, Never>] = []
        var timers: [ReactorTimer] = []
        var subscriptions: [NATSSubscription] = []
        var pinger: Task<Void, Never>?
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
