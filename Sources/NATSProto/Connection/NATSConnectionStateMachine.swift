import Transport

/// The NATS client's connection state, as a value with no I/O, no clock and no continuations:
/// the phase of the connection, the outbound bytes, the PINGs awaiting their PONGs, the
/// subscriptions to restore after a reconnect, the requests awaiting replies, the writer's turn,
/// and ADR-40's reconnect decisions (time is passed in). Each input returns what the driver
/// (``NATSClient``) must do: wake the writer, write a batch inline, complete a flush or a
/// request, reconnect or close. Tests drive it without a socket.
struct NATSConnectionStateMachine: ~Copyable {
    /// Where the connection stands.
    enum Phase: Sendable, Equatable {
        /// The first connection is being made.
        case connecting
        /// A connection is up: bytes queued now leave with the next write.
        case connected
        /// The connection was lost; publishes are buffered until a new one is up.
        case reconnecting
        /// Closed for good.
        case closed
    }

    /// What a caller does once its bytes are queued.
    enum WriteAction: Sendable, Equatable {
        /// Nothing: the writer is busy and will take the bytes, or there is no connection.
        case none
        /// The writer task is parked: wake it.
        case wakeWriter
        /// The writer is idle and the batch is small: write it from the calling task (saving a
        /// thread hop), then call ``inlineWriteFinished(generation:written:)``.
        case writeInline(ByteBuffer)
    }

    /// The writer task's next step.
    enum WriterStep: Sendable, Equatable {
        /// Write this batch (publishers waiting for room may go on), then ask again handing it back.
        case write(ByteBuffer)
        /// Nothing to write: park (``writerParks(generation:)``) until woken.
        case park
        /// The connection it writes for is gone: end.
        case exit
    }

    /// Whether the writer may park now.
    enum WriterPark: Sendable, Equatable {
        /// Park: the driver keeps the continuation and resumes it on ``WriteAction/wakeWriter``.
        case park
        /// Bytes arrived meanwhile: ask ``writerNext(generation:written:)`` again.
        case retry
        /// The connection it writes for is gone: end.
        case exit
    }

    /// What a PING timer tick asks for.
    enum KeepAlive: Sendable, Equatable {
        /// No connection: nothing to do.
        case none
        /// Too many PINGs went unanswered: the connection is stale.
        case stale
        /// A PING was queued.
        case ping(WriteAction)
    }

    /// What became of a reply, a timeout, a cancellation or a close for a request.
    enum RequestCompletion: Sendable, Equatable {
        /// The caller waits: resume it with this result.
        case resume(Result<NATSMessage, NATSError>)
        /// The caller has not started waiting: the result is kept for it.
        case stored
        /// The request was already complete.
        case ignored
    }

    /// What a caller about to wait for its request finds.
    enum RequestWait: Sendable, Equatable {
        /// The result is in.
        case ready(Result<NATSMessage, NATSError>)
        /// No result yet: wait.
        case wait
        /// The request is unknown (the client closed).
        case gone
    }

    /// What a lost connection leaves to do.
    struct LinkLoss: Sendable, Equatable {
        /// Flushes whose PING was written and will get no PONG: fail them.
        var failedFlushes: [UInt64] = []
        /// Requests whose PUB was handed to the lost connection: fail them (their replies were
        /// addressed to that connection's inbox interest). Empty unless the limits ask for it.
        var interruptedRequests: [UInt64] = []
        /// Reconnect (or close the client when reconnecting is not allowed).
        var reconnect: Bool
    }

    /// The next step of the reconnect loop.
    enum ReconnectStep: Sendable, Equatable {
        /// The client is no longer reconnecting (closed, or connected meanwhile).
        case stop
        /// Every server left the pool: close the client.
        case giveUp
        /// Try `server`, not before `notBefore` (monotonic nanoseconds).
        case attempt(NATSServerAddress, notBefore: UInt64)
    }

    /// A subscription as the connection must restore it.
    struct SubscriptionRecord: Sendable, Equatable {
        var subject: String
        var queue: String?
    }

    /// What a request is waiting for.
    enum RequestState: Sendable, Equatable {
        /// Queued as the `queued`-th request; the caller has not started waiting yet.
        case sent(queued: UInt64)
        /// The caller waits (its continuation is the driver's).
        case waiting(queued: UInt64)
        /// Finished before the caller started waiting.
        case done(Result<NATSMessage, NATSError>)
    }

    enum PongWaiter: Sendable, Equatable {
        case keepalive
        case flush(UInt64)
    }

    /// The bounds and choices of the configuration the machine needs.
    struct Limits: Sendable {
        var reconnectBufferSize: Int
        var maximumPingsOutstanding: Int
        var allowReconnect: Bool
        var useDiscoveredServers: Bool
        var randomizeServers: Bool
        /// Outbound bytes past which a publish waits for the writer.
        var highWaterMark = 1 << 20
        /// The largest batch a caller writes inline.
        var inlineWriteLimit = 64 << 10
        /// Fail the requests handed to a connection that breaks, rather than let them wait for
        /// their timeout.
        var failInterruptedRequests = true
    }

    let limits: Limits
    /// `_INBOX.<nuid>.`: reply subjects of this client's requests.
    let inboxPrefix: String

    private(set) var phase = Phase.connecting
    private(set) var isDraining = false
    private(set) var closeReason: NATSError?
    /// Numbers the connections: a link's driver tasks act only while theirs is current.
    private(set) var generation: UInt64 = 0
    /// The server connected to (or last connected to).
    private(set) var server: NATSServerAddress?
    private(set) var info: NATSServerInfo?
    /// INFO's max_payload, kept apart: publishes read it without copying the whole INFO.
    private(set) var maximumPayload = 1 << 20
    private(set) var pool: NATSServerPool

    /// Bytes to send (`outgoing.pending`) and the spare buffer they rotate with.
    private(set) var outgoing: WriteQueue
    /// PINGs in `outgoing.pending` (not yet handed to a connection).
    private var queuedPings = 0
    /// One entry per PING sent or queued, in order.
    private var pongs: [PongWaiter] = []
    private var pongsHead = 0
    private var pingsOutstanding = 0
    /// Whether the writer task is parked, waiting to be woken.
    private(set) var writerParked = false
    /// Whether a batch is being written (by the writer or by a caller inline).
    private(set) var writerBusy = false

    private(set) var subscriptions: [UInt64: SubscriptionRecord] = [:]
    private(set) var nextSID: UInt64 = 1
    /// The sid of the request inbox subscription, once a request made it.
    private(set) var muxSID: UInt64?
    private(set) var requests: [UInt64: RequestState] = [:]
    /// Requests queued so far, and how many of them were handed to a connection in a batch: a
    /// request queued as the n-th went out when n ≤ `requestsHandedOver`.
    private var requestsQueued: UInt64 = 0
    private var requestsHandedOver: UInt64 = 0

    private(set) var statistics = NATSStatistics()

    init(servers: [NATSServerAddress], maximumReconnectAttempts: Int, inboxPrefix: String, limits: Limits) {
        self.limits = limits
        self.inboxPrefix = inboxPrefix
        pool = NATSServerPool(servers, maximumAttempts: maximumReconnectAttempts)
        outgoing = WriteQueue(capacity: 64 << 10, recycleLimit: 4 * limits.highWaterMark)
    }

    var pendingPongCount: Int { pongs.count - pongsHead }

    // The checks below are `mutating` though they change nothing: a non-mutating method on this
    // noncopyable state, reached through the client's lock, is handed a bitwise copy of all of
    // it (some 500 bytes per call on the publish path); a mutating one gets its address.

    /// Refuses an operation on a closed client. The checks run on every publish: the test is
    /// inlined, the error built out of line.
    @inline(__always)
    mutating func checkOpen() throws(NATSError) {
        if phase == .closed { throw closedError() }
    }

    @inline(never)
    func closedError() -> NATSError {
        closeReason.map { NATSError(.closed, "the client is closed: \($0.message)", server: $0.server) }
            ?? NATSError(.closed, "the client is closed")
    }

    /// Refuses a message larger than the server's max_payload.
    @inline(__always)
    mutating func checkPayload(_ size: Int) throws(NATSError) {
        if size > maximumPayload { throw payloadError(size) }
    }

    @inline(never)
    func payloadError(_ size: Int) -> NATSError {
        NATSError(
            .maximumPayloadExceeded, "a message of \(size) bytes exceeds the server's max_payload of \(maximumPayload) bytes",
            server: phase == .connected ? server?.redacted : nil)
    }

    /// Refuses bytes the outbound buffer cannot take while disconnected.
    @inline(__always)
    mutating func checkRoom(for size: Int) throws(NATSError) {
        if phase != .connected, outgoing.pending.readableBytes + size > limits.reconnectBufferSize { throw roomError(size) }
    }

    @inline(never)
    func roomError(_ size: Int) -> NATSError {
        NATSError(
            .reconnectBufferExceeded,
            "\(outgoing.pending.readableBytes) bytes are already buffered while reconnecting; \(size) more exceed the bound of \(limits.reconnectBufferSize)"
        )
    }

    /// Whether a publisher must wait for the writer: the outbound buffer is over the high-water
    /// mark while a connection drains it.
    var isOverHighWaterMark: Bool { phase == .connected && outgoing.pending.readableBytes >= limits.highWaterMark }

    // MARK: - Queueing bytes

    /// Appends a PUB (or HPUB) and says how it leaves; `promptly` asks for an inline write when
    /// the writer is idle (a reply: latency before batching).
    mutating func publish(
        _ payload: UnsafeRawBufferPointer, subject: String, replyTo: String?, headers: NATSHeaders?, headerLength: Int, promptly: Bool
    ) throws(NATSError) -> WriteAction {
        try checkOpen()
        try checkPayload(payload.count + headerLength)
        try checkRoom(for: payload.count + headerLength + subject.utf8.count + 32)
        NATSClientOperation.writePublish(
            subject: subject, replyTo: replyTo, replyToken: nil, headers: headerLength > 0 ? headers : nil, headerLength: headerLength,
            payload: payload, into: &outgoing.pending)
        statistics.outMessages &+= 1
        statistics.outBytes &+= payload.count
        return promptly ? claimInlineWrite() : wakeWriterIfParked()
    }

    /// Registers a subscription; its SUB is queued when connected (otherwise it goes out with the
    /// others after reconnecting).
    mutating func subscribe(subject: String, queue: String?) throws(NATSError) -> (sid: UInt64, action: WriteAction) {
        try checkOpen()
        if isDraining { throw NATSError(.draining, "the client is draining and takes no new subscriptions") }
        let sid = nextSID
        nextSID += 1
        subscriptions[sid] = SubscriptionRecord(subject: subject, queue: queue)
        guard phase == .connected else { return (sid, .none) }
        NATSClientOperation.writeSubscribe(subject: subject, queue: queue, sid: sid, into: &outgoing.pending)
        return (sid, wakeWriterIfParked())
    }

    /// UNSUB now (`after` nil: the subscription is forgotten) or after `after` messages in all.
    mutating func unsubscribe(sid: UInt64, after maximum: Int?) throws(NATSError) -> WriteAction {
        try checkOpen()
        guard subscriptions[sid] != nil else { return .none }
        if maximum == nil { subscriptions[sid] = nil }
        guard phase == .connected else { return .none }
        NATSClientOperation.unsubscribe(sid: sid, after: maximum, into: &outgoing.pending)
        return wakeWriterIfParked()
    }

    /// Forgets a subscription that ended (its auto-unsubscribe count was reached, or its consumer
    /// went away); `sendUnsubscribe` queues an UNSUB.
    mutating func subscriptionEnded(sid: UInt64, sendUnsubscribe: Bool) -> WriteAction {
        guard subscriptions.removeValue(forKey: sid) != nil else { return .none }
        guard sendUnsubscribe, phase == .connected else { return .none }
        NATSClientOperation.unsubscribe(sid: sid, into: &outgoing.pending)
        return wakeWriterIfParked()
    }

    /// Drains one subscription: its UNSUB is queued; the caller then flushes.
    mutating func drainSubscription(sid: UInt64) throws(NATSError) -> WriteAction {
        try checkOpen()
        guard subscriptions.removeValue(forKey: sid) != nil, phase == .connected else { return .none }
        NATSClientOperation.unsubscribe(sid: sid, into: &outgoing.pending)
        return wakeWriterIfParked()
    }

    /// Starts draining the client: new subscriptions and requests are refused, every
    /// subscription's UNSUB is queued; returns their sids.
    mutating func drainAll() throws(NATSError) -> (sids: [UInt64], action: WriteAction) {
        try checkOpen()
        isDraining = true
        let sids = subscriptions.keys.sorted()
        subscriptions.removeAll()
        guard phase == .connected else { return (sids, .none) }
        for sid in sids { NATSClientOperation.unsubscribe(sid: sid, into: &outgoing.pending) }
        return (sids, wakeWriterIfParked())
    }

    // MARK: - Requests

    /// Queues a request with reply token `token`, subscribing the inbox first if no request has.
    mutating func request(
        token: UInt64, _ payload: UnsafeRawBufferPointer, subject: String, headers: NATSHeaders?, headerLength: Int
    ) throws(NATSError) -> WriteAction {
        try checkOpen()
        if isDraining { throw NATSError(.draining, "the client is draining and sends no new requests") }
        try checkPayload(payload.count + headerLength)
        try checkRoom(for: payload.count + headerLength + 128)
        if muxSID == nil {
            let sid = nextSID
            nextSID += 1
            muxSID = sid
            if phase == .connected {
                NATSClientOperation.writeSubscribe(subject: inboxPrefix + "*", queue: nil, sid: sid, into: &outgoing.pending)
            }
        }
        requestsQueued &+= 1
        requests[token] = .sent(queued: requestsQueued)
        NATSClientOperation.writePublish(
            subject: subject, replyTo: inboxPrefix, replyToken: token, headers: headerLength > 0 ? headers : nil,
            headerLength: headerLength, payload: payload, into: &outgoing.pending)
        statistics.outMessages &+= 1
        statistics.outBytes &+= payload.count
        return claimInlineWrite()
    }

    /// The caller of request `token` is about to wait.
    mutating func requestWaits(token: UInt64) -> RequestWait {
        switch requests[token] {
        case .done(let result)?:
            requests[token] = nil
            return .ready(result)
        case .sent(let queued)?:
            requests[token] = .waiting(queued: queued)
            return .wait
        case .waiting?, nil:
            return .gone
        }
    }

    /// Request `token` has its outcome: a reply, a timeout, a cancellation. The first one counts.
    mutating func requestFinished(token: UInt64, _ result: Result<NATSMessage, NATSError>) -> RequestCompletion {
        switch requests[token] {
        case .sent?:
            requests[token] = .done(result)
            return .stored
        case .waiting?:
            requests[token] = nil
            return .resume(result)
        case .done?, nil:
            return .ignored
        }
    }

    /// Whether requests are still outstanding (a drain waits for their replies).
    var hasOutstandingRequests: Bool { !requests.isEmpty }

    // MARK: - PING and PONG

    /// Queues the PING of flush `id`, whose PONG confirms everything queued before it.
    mutating func flush(id: UInt64) throws(NATSError) -> WriteAction {
        try checkOpen()
        NATSClientOperation.ping(into: &outgoing.pending)
        queuedPings += 1
        pongs.append(.flush(id))
        return wakeWriterIfParked()
    }

    /// The keep-alive timer ticked.
    mutating func keepAliveTick() -> KeepAlive {
        guard phase == .connected else { return .none }
        if pingsOutstanding >= limits.maximumPingsOutstanding { return .stale }
        pingsOutstanding += 1
        NATSClientOperation.ping(into: &outgoing.pending)
        queuedPings += 1
        pongs.append(.keepalive)
        return .ping(wakeWriterIfParked())
    }

    /// The server sent PING: queue its PONG.
    mutating func pingReceived() -> WriteAction {
        NATSClientOperation.pong(into: &outgoing.pending)
        return wakeWriterIfParked()
    }

    /// The server sent PONG; returns the flush it completes, if it was one.
    mutating func pongReceived() -> UInt64? {
        pingsOutstanding = 0
        guard case .flush(let id)? = popPong() else { return nil }
        return id
    }

    private mutating func popPong() -> PongWaiter? {
        guard pongsHead < pongs.count else { return nil }
        let first = pongs[pongsHead]
        pongsHead += 1
        if pongsHead == pongs.count {
            pongs.removeAll(keepingCapacity: true)
            pongsHead = 0
        }
        return first
    }

    // MARK: - The writer's turn

    /// Marks a parked writer as woken, for whoever queued bytes.
    private mutating func wakeWriterIfParked() -> WriteAction {
        // While a caller writes inline it holds the turn; it wakes the writer when done.
        guard phase == .connected, !writerBusy, writerParked else { return .none }
        writerParked = false
        return .wakeWriter
    }

    /// For a lone latency-bound operation: when the writer task is idle, the caller takes the
    /// outbound bytes and writes them itself; otherwise the writer is woken as usual.
    private mutating func claimInlineWrite() -> WriteAction {
        guard phase == .connected, writerParked, !writerBusy, outgoing.pending.readableBytes <= limits.inlineWriteLimit else {
            return wakeWriterIfParked()
        }
        return .writeInline(takeBatch())
    }

    /// The pending bytes, for whoever now holds the write turn.
    private mutating func takeBatch() -> ByteBuffer {
        writerBusy = true
        queuedPings = 0
        requestsHandedOver = requestsQueued
        statistics.writes &+= 1
        return outgoing.takePending()
    }

    /// A caller's inline write ended (`written` is the batch, handed back for reuse; nil when the
    /// write failed). True when the parked writer should now be woken for bytes queued meanwhile.
    mutating func inlineWriteFinished(generation: UInt64, written: consuming ByteBuffer?) -> Bool {
        guard generation == self.generation, phase == .connected else { return false }
        writerBusy = false
        if let written = written.take() { outgoing.recycle(written) }
        guard !outgoing.pending.isEmpty else { return false }
        return wakeWriterIfParked() == .wakeWriter
    }

    /// The writer task of connection `generation` asks for its next batch, handing back the one
    /// it wrote (by move: a second reference would make the next append copy it).
    mutating func writerNext(generation: UInt64, written: consuming ByteBuffer?) -> WriterStep {
        if let written = written.take() {
            // Having written a batch, the writer held the turn.
            if generation == self.generation { writerBusy = false }
            outgoing.recycle(written)
        }
        guard phase == .connected, generation == self.generation else { return .exit }
        // Nothing to write, or a caller is writing inline (it wakes the writer after).
        guard !outgoing.pending.isEmpty, !writerBusy else { return .park }
        return .write(takeBatch())
    }

    /// The writer of connection `generation` found nothing to write and is about to park.
    mutating func writerParks(generation: UInt64) -> WriterPark {
        guard phase == .connected, generation == self.generation else { return .exit }
        if !outgoing.pending.isEmpty, !writerBusy { return .retry }
        writerParked = true
        return .park
    }

    // MARK: - Connecting, losing, reconnecting

    /// A connection to `server` was confirmed (PONG to the first PING): it becomes current.
    /// Every subscription is queued again ahead of what was buffered (`remaining` gives each
    /// auto-unsubscribing one its count left), the request inbox too. Returns the new
    /// generation and the servers INFO added to the pool.
    mutating func connectionEstablished<Generator: RandomNumberGenerator>(
        to server: NATSServerAddress, info: NATSServerInfo, reconnecting: Bool, now: UInt64, remaining: [UInt64: Int],
        using generator: inout Generator
    ) throws(NATSError) -> (generation: UInt64, discovered: [String]) {
        try checkOpen()
        generation += 1
        self.server = server
        phase = .connected
        setInfo(info)
        pingsOutstanding = 0
        writerParked = false
        writerBusy = false
        if reconnecting { statistics.reconnects += 1 }
        // Subscriptions first, so replies to buffered requests find their inbox.
        var replay = ByteBuffer(capacity: 256 + outgoing.pending.readableBytes)
        for sid in subscriptions.keys.sorted() {
            guard let record = subscriptions[sid] else { continue }
            NATSClientOperation.writeSubscribe(subject: record.subject, queue: record.queue, sid: sid, into: &replay)
            if let left = remaining[sid] { NATSClientOperation.unsubscribe(sid: sid, after: left, into: &replay) }
        }
        if let muxSID {
            NATSClientOperation.writeSubscribe(subject: inboxPrefix + "*", queue: nil, sid: muxSID, into: &replay)
        }
        if !replay.isEmpty {
            replay.writeBuffer(outgoing.pending)
            outgoing.pending = replay
        }
        pool.connected(server, at: now)
        return (generation, discover(from: info, server: server, using: &generator))
    }

    /// A new INFO on the current connection; returns the servers it added to the pool.
    mutating func infoReceived<Generator: RandomNumberGenerator>(_ info: NATSServerInfo, using generator: inout Generator) -> [String] {
        setInfo(info)
        guard let server else { return [] }
        return discover(from: info, server: server, using: &generator)
    }

    private mutating func setInfo(_ info: NATSServerInfo) {
        self.info = info
        maximumPayload = info.maximumPayload
    }

    private mutating func discover<Generator: RandomNumberGenerator>(
        from info: NATSServerInfo, server: NATSServerAddress, using generator: inout Generator
    ) -> [String] {
        guard limits.useDiscoveredServers else { return [] }
        return pool.add(advertised: info.connectURLs, from: server, shuffle: limits.randomizeServers, using: &generator)
    }

    /// Connection `generation` broke (`protocolViolation`: the server broke the protocol). Nil
    /// when it was not current (already handled).
    mutating func connectionLost(generation: UInt64, protocolViolation: Bool = false) -> LinkLoss? {
        guard phase == .connected, generation == self.generation, let server else { return nil }
        phase = .reconnecting
        var loss = LinkLoss(reconnect: limits.allowReconnect)
        // PINGs already written will get no PONG; those still queued will, after reconnecting.
        let written = pendingPongCount - queuedPings
        for _ in 0..<max(0, written) {
            if case .flush(let id)? = popPong() { loss.failedFlushes.append(id) }
        }
        if limits.failInterruptedRequests {
            for (token, request) in requests {
                switch request {
                case .sent(let queued), .waiting(let queued):
                    if queued <= requestsHandedOver { loss.interruptedRequests.append(token) }
                case .done: break
                }
            }
        }
        pingsOutstanding = 0
        writerParked = false
        writerBusy = false
        pool.lost(server, protocolViolation: protocolViolation)
        return loss
    }

    /// The first connect's attempt on `server` failed at `now`.
    mutating func connectAttemptFailed(_ server: NATSServerAddress, now: UInt64) {
        pool.attempted(server, at: now)
    }

    /// The reconnect loop's next step at `now`; `jitter` draws the extra wait for a server.
    mutating func nextReconnectStep(now: UInt64, wait: UInt64, jitter: (NATSServerAddress) -> UInt64) -> ReconnectStep {
        guard phase == .reconnecting else { return .stop }
        guard let next = pool.next(now: now, wait: wait, jitter: jitter) else { return .giveUp }
        return .attempt(next.server, notBefore: next.notBefore)
    }

    /// An attempt on `server` starts at `now`; false when the client stopped reconnecting meanwhile.
    mutating func reconnectAttemptStarts(_ server: NATSServerAddress, now: UInt64) -> Bool {
        guard phase == .reconnecting else { return false }
        pool.attempted(server, at: now)
        return true
    }

    /// The attempt on `server` failed.
    mutating func reconnectAttemptFailed(_ server: NATSServerAddress) {
        pool.failed(server)
    }

    /// Closes for good. False when already closed. Everything waiting is dropped: the driver
    /// fails its waiters.
    mutating func close(reason: NATSError?) -> Bool {
        guard phase != .closed else { return false }
        phase = .closed
        closeReason = reason
        writerParked = false
        writerBusy = false
        requests.removeAll()
        subscriptions.removeAll()
        pongs.removeAll()
        pongsHead = 0
        queuedPings = 0
        outgoing.pending.clear()
        return true
    }

    /// Counts messages and payload bytes received.
    mutating func received(messages: Int, bytes: Int) {
        statistics.inMessages &+= messages
        statistics.inBytes &+= bytes
    }
}
