import Logging
import Synchronization
import Transport

/// One session with a PostgreSQL server.
///
/// Requests from any number of tasks are pipelined: each is written as soon as it is made (queued
/// bytes leave together in one write) and its responses are matched by order. Reading is done by
/// the callers themselves: the first caller that needs a response and finds no one reading reads
/// for everyone, hands each response to its request, and passes the role on once its own has
/// come. Nothing is read unless some caller wants it, which is the back-pressure for large results
/// (rows of an unfinished sequence are buffered only while a later request on the same connection
/// waits behind them).
public final class PostgresConnection: Sendable {
    @usableFromInline typealias Event = ConnectionStateMachine.Event

    let transport: Connection
    let state: Mutex<State>
    /// The host this session is connected to (for CancelRequest).
    let host: PostgresConfiguration.Host
    let configuration: PostgresConfiguration
    /// The configuration's logger with this connection's endpoint and id as metadata.
    let logger: Logger
    /// Numbers the process's connections for the logs.
    static let connectionIDs = Atomic<UInt64>(0)
    let noticeContinuation: AsyncStream<PostgresDiagnostics>.Continuation
    private let noticeStream: AsyncStream<PostgresDiagnostics>
    private let notificationContinuation: AsyncStream<PostgresNotification>.Continuation
    private let notificationStream: AsyncStream<PostgresNotification>

    struct RequestState {
        var events: [Event] = []
        var isComplete = false
        /// The caller went away: events are dropped as they come.
        var isAbandoned = false
        /// The caller asked to cancel the query (its task was cancelled, or its timeout passed).
        var isCancelRequested = false
        /// A CancelRequest went out for it (only while it was the running request and the last
        /// one written, so the signal could reach no other statement).
        var isCancelSent = false
        /// Why the cancel was asked for: the error the caller gets if the call has to be ended.
        var cancelCause: PostgresError.Kind = .cancelled
        /// The task that asks for the cancel when the request's timeout passes (for a caller
        /// that waits; a caller that reads stops reading at `deadline` and asks itself).
        var timer: Task<Void, Never>?
        /// When the request's timeout passes.
        var deadline: Deadline?
        /// When the grace period after its cancel ends.
        var graceDeadline: Deadline?
        /// Ends the call when the server has not finished the request within the grace period.
        var graceTimer: ReactorTimer?
        /// The outcome decided by the client (the call was ended before the server's answer);
        /// it wins over the connection's failure.
        var outcome: PostgresError?
        /// The caller has seen `outcome`; the entry stays only to route the server's late answer.
        var isOutcomeDelivered = false

        /// The queued events, leaving none (the array moves out; the next ones start a new one).
        mutating func takeEvents() -> [Event] {
            var taken: [Event] = []
            swap(&taken, &events)
            return taken
        }

        /// Queues `event` for the caller, unless the caller went away; whether it was queued.
        mutating func deliver(_ event: Event) -> Bool {
            guard !isAbandoned else { return false }
            events.append(event)
            return true
        }
    }

    /// The bytes of requests registered but not yet handed to the socket (offsets into the
    /// readable bytes of the outbound buffer): while a cancel is outstanding they are held back,
    /// and a cancelled one can be withdrawn.
    struct UnwrittenGroup {
        var first: UInt64
        var count: Int
        var start: Int
        var end: Int
    }

    struct ReaderState: Sendable {
        var decoder: BackendMessageDecoder
        var buffer: ByteBuffer
    }

    struct State: ~Copyable {
        var machine: ConnectionStateMachine
        var writes = WriteQueue()
        var nextID: UInt64 = 1
        var failure: PostgresError?
        var readerActive = false
        var reader: ReaderState?
        var requests: [UInt64: RequestState] = [:]
        /// Callers suspended until their request has events (a few at most: one per waiting task).
        var waiters: [UInt64: UnsafeContinuation<Void, Never>] = [:]
        var statements = StatementCache(capacity: 0)
        /// Keep reading with nothing pending (LISTEN).
        var readsContinuously = false
        /// A COPY FROM STDIN whose data is being sent: no other request may be written meanwhile.
        var exclusiveHolder: UInt64?
        /// Callers waiting for the exclusive use to end.
        var blockedSubmitters: [UnsafeContinuation<Void, Never>] = []
        /// Callers waiting for the write queue to drain.
        var drainWaiters: [UnsafeContinuation<Void, Never>] = []
        /// Whether the reader may wait for a reply on its own thread.
        var inlineGate = InlineWaitGate()
        /// The last request id whose bytes were handed to the socket.
        var writtenThrough: UInt64 = 0
        /// Requests whose bytes are still in the outbound buffer, in order.
        var unwritten: [UnwrittenGroup] = []
        /// The request a cancel is outstanding for: until the server has the signal (it closed
        /// the cancel connection) and, when the request was not yet running, until it ran, no
        /// later request is written, so the signal can reach no one else's statement.
        var cancelTarget: UInt64?
        /// Whether the CancelRequest for `cancelTarget` has been sent and not yet confirmed.
        var cancelInFlight = false

        /// Whether new requests' bytes must wait in the buffer.
        var holdsWrites: Bool { cancelTarget != nil && !unwritten.isEmpty }
        /// The id of the last request registered.
        var lastRegistered: UInt64 { nextID &- 1 }
    }

    init(
        transport: Connection, machine: ConnectionStateMachine, reader: ReaderState, host: PostgresConfiguration.Host,
        configuration: PostgresConfiguration, logger: Logger
    ) {
        self.transport = transport
        self.host = host
        self.configuration = configuration
        self.logger = logger
        var initial = State(machine: machine)
        initial.reader = reader
        initial.statements = StatementCache(capacity: configuration.statementCacheCapacity)
        self.state = Mutex(initial)
        (noticeStream, noticeContinuation) = AsyncStream.makeStream(of: PostgresDiagnostics.self, bufferingPolicy: .bufferingNewest(1000))
        (notificationStream, notificationContinuation) = AsyncStream.makeStream(
            of: PostgresNotification.self, bufferingPolicy: .bufferingNewest(100_000))
    }

    deinit {
        transport.close()
    }

    // MARK: - Session facts

    /// A run-time parameter the server reported (`server_version`, `TimeZone`, `integer_datetimes` …).
    public func parameter(_ name: String) -> String? { state.withLock { $0.machine.parameters[name] } }

    /// The session's transaction status after the last completed request.
    public var transactionStatus: TransactionStatus { state.withLock { $0.machine.transactionStatus } }

    /// The server's NegotiateProtocolVersion answer, when it sent one (it speaks an older minor
    /// version, or ignored some `_pq_.` startup options).
    public var protocolNegotiation: NegotiateProtocolVersion? { state.withLock { $0.machine.negotiatedProtocol } }

    /// The key a CancelRequest quotes.
    public var backendKey: BackendKeyData? { state.withLock { $0.machine.backendKey } }
    /// The protocol version the session speaks (see ``PostgresConfiguration/maximumProtocolVersion``).
    public var protocolVersion: PostgresConfiguration.ProtocolVersion { state.withLock { $0.machine.protocolVersion } }

    /// Whether the connection has failed or was closed.
    public var isClosed: Bool { state.withLock { $0.failure != nil } }

    /// Whether the session is encrypted.
    public var isTLS: Bool { transport.isTLS }

    /// Notices (warnings, `RAISE NOTICE` …) the server sent, in order.
    public var notices: AsyncStream<PostgresDiagnostics> { noticeStream }

    /// NOTIFY messages for the channels this session LISTENs to. Asking for them keeps the
    /// connection reading while no query runs, so they arrive without waiting for the next query.
    public var notifications: AsyncStream<PostgresNotification> {
        let start = state.withLock { state -> Bool in
            state.readsContinuously = true
            guard !state.readerActive, state.failure == nil else { return false }
            state.readerActive = true
            return true
        }
        if start { startBackgroundReader() }
        return notificationStream
    }

    /// Sends Terminate and closes; waiting callers fail with a connection error.
    public func close() {
        let farewell = state.withLock { state -> ByteBuffer? in
            // With a write in progress the stream cannot take another message cleanly.
            guard state.failure == nil, !state.writes.isFlushing else { return nil }
            var bytes = ByteBuffer()
            FrontendMessage.terminate(into: &bytes)
            return bytes
        }
        fail(PostgresError(.connection, message: "connection closed"), closingTransport: farewell == nil)
        if let farewell {
            Task { [transport] in
                try? await transport.write(farewell, deadline: .after(.seconds(1)))
                transport.close()
            }
        }
    }

    // MARK: - Submitting

    /// Registers a request whose messages `encode` appends to the outbound buffer, and writes them.
    /// Returns the request's id; its events come from ``nextEvents(_:)``. An `exclusive` request
    /// (COPY FROM STDIN) keeps every later one out of the stream until it completes or ``endExclusive(_:)``.
    func submit(
        timeout: Duration? = nil, exclusive: Bool = false,
        _ encode: (inout ByteBuffer, inout StatementCache) throws(PostgresError) -> Void
    ) async throws(PostgresError) -> UInt64 {
        try await submit(count: 1, timeout: timeout, exclusive: exclusive, encode)
    }

    /// Registers `count` requests at once (ids `first ..< first + count`), whose messages `encode`
    /// appends in order; returns the first id. A task that is already cancelled sends nothing.
    ///
    /// `flushInBackground` writes the bytes from another task and returns at once, so that the
    /// caller can read replies while they go out: a batch whose replies fill the socket buffers
    /// before its requests are all written (the server stops reading until its replies are
    /// read) would otherwise leave the caller waiting forever in its own write.
    func submit(
        count: Int, timeout: Duration? = nil, exclusive: Bool = false, flushInBackground: Bool = false,
        _ encode: (inout ByteBuffer, inout StatementCache) throws(PostgresError) -> Void
    ) async throws(PostgresError) -> UInt64 {
        var registered: (id: UInt64, mustFlush: Bool)?
        while registered == nil {
            if Task.isCancelled { throw PostgresError(.cancelled, message: "the task was cancelled before the statement was sent") }
            registered = try state.withLock { state throws(PostgresError) -> (UInt64, Bool)? in
                if let failure = state.failure { throw failure }
                if state.exclusiveHolder != nil { return nil }
                let start = state.writes.pending.readableBytes
                do throws(PostgresError) {
                    try encode(&state.writes.pending, &state.statements)
                } catch {
                    state.writes.pending.truncate(toReadableBytes: start)
                    throw error
                }
                let id = state.nextID
                state.nextID &+= UInt64(count)
                for offset in 0..<UInt64(count) {
                    state.machine.enqueue(id + offset)
                    state.requests[id + offset] = RequestState()
                }
                state.unwritten.append(UnwrittenGroup(first: id, count: count, start: start, end: state.writes.pending.readableBytes))
                if exclusive { state.exclusiveHolder = id }
                return (id, state.writes.claimFlush())
            }
            if registered == nil {
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let wait = state.withLock { state -> Bool in
                            guard state.exclusiveHolder != nil, state.failure == nil, !Task.isCancelled else { return false }
                            state.blockedSubmitters.append(continuation)
                            return true
                        }
                        if !wait { continuation.resume() }
                    }
                } onCancel: {
                    // Every blocked caller looks again; the cancelled one gives up.
                    let blocked = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
                        defer { state.blockedSubmitters = [] }
                        return state.blockedSubmitters
                    }
                    for waiter in blocked { waiter.resume() }
                }
            }
        }
        guard let (id, mustFlush) = registered else { throw PostgresError(.usage, message: "request not registered") }
        if let timeout {
            let deadline = Deadline.after(timeout)
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self?.requestCancellation(of: id, cause: .timedOut) }
            }
            let keep = state.withLock { state -> Bool in
                guard state.requests[id] != nil else { return false }
                state.requests[id]?.timer = timer
                state.requests[id]?.deadline = deadline
                return true
            }
            if !keep { timer.cancel() }
        }
        if mustFlush {
            if flushInBackground { Task { await self.flush() } } else { await flush() }
        }
        return id
    }

    /// Writes everything queued, again and again, until the queue stays empty or is held back
    /// for an outstanding cancel.
    func flush() async {
        do {
            try await transport.writeQueued(
                take: {
                    state.withLock { state -> ByteBuffer? in
                        let batch = state.writes.nextBatch(stop: state.failure != nil || state.holdsWrites)
                        if batch != nil {
                            state.writtenThrough = state.lastRegistered
                            state.unwritten.removeAll(keepingCapacity: true)
                        }
                        return batch
                    }
                },
                giveBack: { batch in state.withLock { $0.writes.recycle(batch) } })
        } catch {
            fail(PostgresError(.connection, message: "write failed: \(error)"))
        }
        let waiters = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            defer { state.drainWaiters = [] }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until no write is in progress (the bytes queued so far are out).
    func waitForDrain() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let wait = state.withLock { state -> Bool in
                guard state.writes.isFlushing, state.failure == nil else { return false }
                state.drainWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Ends request `id`'s exclusive hold on the stream (if it still has it); blocked callers go on.
    func endExclusive(_ id: UInt64) {
        state.withLock { state in
            if state.exclusiveHolder == id { state.exclusiveHolder = nil }
        }
        wakeBlockedSubmitters()
    }

    /// Resumes callers that waited for an exclusive hold to end (when none is held any more).
    func wakeBlockedSubmitters() {
        let blocked = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            guard state.exclusiveHolder == nil else { return [] }
            defer { state.blockedSubmitters = [] }
            return state.blockedSubmitters
        }
        for waiter in blocked { waiter.resume() }
    }

    // MARK: - Receiving

    private enum Step {
        case events([Event], complete: Bool)
        case failed(PostgresError)
        case lead
        case wait
        case waitForBackgroundReader
    }

    /// The events that arrived for request `id` since the last call, and whether it is complete.
    /// Suspends until there is at least one event or the request completes. A request's events are
    /// delivered even when the connection failed after they arrived.
    ///
    /// When the calling task is cancelled, the query is cancelled (see
    /// ``requestCancellation(of:cause:)``) and the call waits for the server's answer, so the
    /// session stays in step: the query ends with a 57014 error, or completes if it was already
    /// done. The wait is bounded by the configuration's cancel grace period.
    func nextEvents(_ id: UInt64) async throws(PostgresError) -> (events: [Event], isComplete: Bool) {
        while true {
            let cancelled = Task.isCancelled
            if cancelled { requestCancellation(of: id, cause: .cancelled) }
            let step = state.withLock { state -> Step in
                if var request = state.requests[id], let outcome = request.outcome {
                    request.timer?.cancel()
                    if request.isComplete {
                        state.requests[id] = nil
                    } else {
                        request.isOutcomeDelivered = true
                        state.requests[id] = request
                    }
                    return .failed(outcome)
                }
                // One lookup; the entry is changed in place, its events moved out without a copy.
                if let index = state.requests.index(forKey: id),
                    !state.requests.values[index].events.isEmpty || state.requests.values[index].isComplete
                {
                    let events = state.requests.values[index].takeEvents()
                    guard state.requests.values[index].isComplete else { return .events(events, complete: false) }
                    state.requests.values[index].timer?.cancel()
                    state.requests.values[index].graceTimer?.cancel()
                    state.requests.remove(at: index)
                    return .events(events, complete: true)
                }
                if let failure = state.failure { return .failed(failure) }
                guard state.requests[id] != nil else {
                    return .failed(PostgresError(.usage, message: "request \(id) is unknown"))
                }
                guard !state.readerActive else { return .wait }
                state.readerActive = true
                // A cancelled task cannot read (its reads end at once): a reader task reads for it.
                return cancelled ? .waitForBackgroundReader : .lead
            }
            switch step {
            case .events(let events, let complete):
                return (events, complete)
            case .failed(let error):
                throw error
            case .lead:
                // The read stops at the request's deadlines: act on the one that passed.
                guard await lead(for: id) else { continue }
                let (timedOut, graceOver) = state.withLock { state -> (Bool, Bool) in
                    guard let request = state.requests[id], !request.isComplete else { return (false, false) }
                    return (
                        !request.isCancelRequested && request.deadline?.hasPassed == true, request.graceDeadline?.hasPassed == true
                    )
                }
                if timedOut { requestCancellation(of: id, cause: .timedOut) }
                if graceOver { cancelGraceExpired(for: id) }
            case .wait, .waitForBackgroundReader:
                if case .waitForBackgroundReader = step { startBackgroundReader() }
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            guard let request = state.requests[id], request.events.isEmpty, !request.isComplete, request.outcome == nil,
                                state.failure == nil, state.readerActive
                            else { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.requestCancellation(of: id, cause: .cancelled)
                }
            }
        }
    }

    // MARK: - Cancelling

    /// What a cancel decided, to carry out after the lock.
    enum CancelStep {
        /// Nothing to do (the request is done, or already being cancelled).
        case none
        /// The request was never written: it was withdrawn; wake its caller.
        case withdrawn(UnsafeContinuation<Void, Never>?, flush: Bool)
        /// Send the CancelRequest now: the request runs and nothing was written after it.
        case signal(UInt64)
        /// Wait: the signal goes out when the request starts running (nothing is written after
        /// it meanwhile), or never, when other requests were written after it.
        case wait
    }

    /// Cancels request `id` as libpq does, so that the signal can reach no other statement:
    /// - not yet written: it is withdrawn from the outbound buffer and never runs;
    /// - written, and the last request written: later requests are held back, and a CancelRequest
    ///   goes out once it runs (at once if it runs now); writing resumes when the server has
    ///   closed the cancel connection (it has the signal: arriving while the session is idle, the
    ///   signal is ignored) and the request has ended or is no longer the running one;
    /// - written with later requests behind it: no signal (it would kill whichever of them runs
    ///   when it arrives); the request runs to its end.
    /// In every case the caller's wait is bounded: when the request has not ended within the
    /// grace period, the call ends with a `cause` error (and the connection is closed when a
    /// signal went out and was not answered: the server or the network is stuck).
    func requestCancellation(of id: UInt64, cause: PostgresError.Kind) {
        let step = state.withLock { state -> CancelStep in
            guard var request = state.requests[id], !request.isComplete, !request.isCancelRequested, request.outcome == nil,
                state.failure == nil
            else { return .none }
            request.isCancelRequested = true
            request.cancelCause = cause
            if id > state.writtenThrough, let withdrawn = Self.withdraw(id, &state) {
                request.isAbandoned = true
                request.outcome = PostgresError(
                    cause, message: cause == .timedOut ? "the statement timed out before it was sent; it did not run" : "the task was cancelled before the statement was sent; it did not run")
                state.requests[id] = request
                return .withdrawn(state.waiters.removeValue(forKey: id), flush: withdrawn)
            }
            state.requests[id] = request
            guard id == state.writtenThrough, state.cancelTarget == nil else { return .wait }
            state.cancelTarget = id
            guard state.machine.currentRequest == id else { return .wait }
            state.requests[id]?.isCancelSent = true
            state.cancelInFlight = true
            return .signal(id)
        }
        switch step {
        case .none:
            return
        case .withdrawn(let waiter, let mustFlush):
            waiter?.resume()
            if mustFlush { Task { await self.flush() } }
            return
        case .signal(let target):
            sendCancelRequest(for: target)
        case .wait:
            break
        }
        startGraceTimer(for: id)
    }

    /// Replaces the bytes of request `id`'s group, which were never written, with what keeps the
    /// session in step without running anything: its Parse and Close messages (the statement
    /// cache counts on them) and one Sync per response cycle. Returns whether the outbound
    /// buffer must now be flushed; nil when the request is not in the buffer.
    private static func withdraw(_ id: UInt64, _ state: inout State) -> Bool? {
        guard let index = state.unwritten.firstIndex(where: { id >= $0.first && id < $0.first + UInt64($0.count) }) else { return nil }
        let group = state.unwritten[index]
        let pending = state.writes.pending
        guard let original = pending.getSlice(at: group.start, count: group.end - group.start) else { return nil }
        var kept = ByteBuffer(capacity: original.readableBytes)
        FrontendMessage.keepingOnlyPreparation(original, into: &kept)
        var rebuilt = ByteBuffer(capacity: pending.readableBytes)
        if let head = pending.getSlice(at: 0, count: group.start) { rebuilt.writeBuffer(head) }
        rebuilt.writeBuffer(kept)
        if let tail = pending.getSlice(at: group.end, count: pending.readableBytes - group.end) { rebuilt.writeBuffer(tail) }
        state.writes.pending = rebuilt
        let shift = kept.readableBytes - (group.end - group.start)
        state.unwritten[index].end = group.start + kept.readableBytes
        for later in state.unwritten.indices where later > index {
            state.unwritten[later].start += shift
            state.unwritten[later].end += shift
        }
        // The whole group's responses are dropped: its other requests are abandoned too.
        for other in group.first..<(group.first + UInt64(group.count)) where other != id {
            state.requests[other]?.isAbandoned = true
        }
        return !state.holdsWrites && state.writes.claimFlush()
    }

    /// Ends the caller's wait for request `id` when the server has not finished it within the
    /// grace period after the cancel.
    private func startGraceTimer(for id: UInt64) {
        let deadline = Deadline.after(configuration.cancelGracePeriod)
        let timer = Reactor.shared.schedule(at: deadline) { [weak self] in
            self?.cancelGraceExpired(for: id)
        }
        let keep = state.withLock { state -> Bool in
            guard state.requests[id] != nil, state.requests[id]?.isComplete == false else { return false }
            state.requests[id]?.graceTimer = timer
            state.requests[id]?.graceDeadline = deadline
            return true
        }
        if !keep { timer.cancel() }
    }

    func cancelGraceExpired(for id: UInt64) {
        let grace = configuration.cancelGracePeriod
        enum Ending {
            case none
            case release(UnsafeContinuation<Void, Never>?, flush: Bool)
            case close(PostgresError)
        }
        let ending = state.withLock { state -> Ending in
            guard var request = state.requests[id], !request.isComplete, request.outcome == nil, state.failure == nil else { return .none }
            let cause = request.cancelCause
            if request.isCancelSent {
                // The server had the signal and did not end the statement: something is stuck.
                request.outcome = PostgresError(
                    cause, message: "the server did not end the cancelled statement within \(grace); the connection was closed")
                state.requests[id] = request
                return .close(PostgresError(.connection, message: "closed: a cancelled statement did not end within \(grace)"))
            }
            // No signal went out (others' statements ran or were queued around it): the statement
            // runs on; its result is dropped and the caller told.
            request.isAbandoned = true
            request.events = []
            request.outcome = PostgresError(
                cause,
                message: "the statement was not interrupted (other statements on this connection were around it) and did not end within \(grace); it may still complete, its result is discarded"
            )
            state.requests[id] = request
            var mustFlush = false
            if state.cancelTarget == id, !state.cancelInFlight {
                state.cancelTarget = nil
                mustFlush = !state.writes.pending.isEmpty && state.writes.claimFlush()
            }
            return .release(state.waiters.removeValue(forKey: id), flush: mustFlush)
        }
        switch ending {
        case .none:
            return
        case .release(let waiter, let mustFlush):
            waiter?.resume()
            if mustFlush { Task { await self.flush() } }
        case .close(let error):
            logger.warning("a cancelled statement did not end in time; closing the connection", metadata: ["grace": "\(grace)"])
            fail(error)
        }
    }

    /// Sends a CancelRequest with this session's key on a connection of its own and waits for the
    /// server to close it (libpq's rule: the server then has the signal); then writing resumes.
    func sendCancelRequest(for target: UInt64) {
        guard let key = backendKey else {
            cancelConfirmed(for: target)
            return
        }
        let endpoint = host.endpoint
        let timeout = configuration.connectTimeout
        let deadline = Deadline.after(configuration.cancelGracePeriod)
        logger.debug("sending a CancelRequest")
        Task.detached { [self] in
            if let side = try? await Connection.connect(to: endpoint, options: ConnectOptions(timeout: timeout)) {
                var message = ByteBuffer()
                FrontendMessage.cancelRequest(key, into: &message)
                try? await side.write(message, deadline: deadline)
                var sink = ByteBuffer()
                _ = try? await side.read(into: &sink, deadline: deadline)  // returns at the server's close
                side.close()
            }
            cancelConfirmed(for: target)
        }
    }

    /// The cancel connection for `target` is closed: later requests may be written once the
    /// target is no longer running.
    private func cancelConfirmed(for target: UInt64) {
        let mustFlush = state.withLock { state -> Bool in
            guard state.cancelTarget == target else { return false }
            state.cancelInFlight = false
            return Self.releaseCancelHold(&state)
        }
        if mustFlush { Task { await self.flush() } }
    }

    /// Ends the hold on writes once the signal is delivered and its target has ended. Returns
    /// whether the caller must flush.
    private static func releaseCancelHold(_ state: inout State) -> Bool {
        guard let target = state.cancelTarget, !state.cancelInFlight else { return false }
        let ended = state.requests[target].map { $0.isComplete || $0.outcome != nil } ?? true
        guard ended || state.requests[target]?.isCancelSent == true else { return false }
        // Once the signal was delivered it is spent: later requests are safe whether or not the
        // target still runs.
        state.cancelTarget = nil
        return !state.writes.pending.isEmpty && state.writes.claimFlush()
    }

    /// The caller no longer wants request `id`'s events (its row sequence was dropped).
    func abandon(_ id: UInt64) {
        let wake = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            guard var request = state.requests[id] else { return nil }
            if request.isComplete {
                state.requests[id] = nil
                return nil
            }
            request.isAbandoned = true
            request.events = []
            state.requests[id] = request
            return state.readerActive ? nil : Self.takeHandOff(&state)
        }
        wake?.resume()
    }

    /// Reads as the leader until request `id` has events, then hands the reader role on. True
    /// when the read stopped at one of the request's deadlines.
    private func lead(for id: UInt64) async -> Bool {
        guard var reader = takeReader() else { return false }
        let stoppedAtDeadline = await readLoop(
            &reader, asCaller: true,
            until: { state in
                // Earlier requests' rows are buffered on the way: stalling until their consumers
                // read could deadlock a caller that holds an unfinished sequence.
                guard let request = state.requests[id] else { return true }
                return !request.events.isEmpty || request.isComplete || request.outcome != nil
            },
            deadline: { state in
                // A caller reading for itself stops at its timeout, and at the end of the grace
                // period after its cancel: nothing else could wake it from a stalled read.
                guard let request = state.requests[id] else { return .never }
                return (request.isCancelRequested ? request.graceDeadline : request.deadline) ?? .never
            })
        releaseReader(reader)
        return stoppedAtDeadline
    }

    private func takeReader() -> ReaderState? {
        let reader = state.withLock { state -> ReaderState? in
            defer { state.reader = nil }
            return state.reader
        }
        if reader == nil { fail(PostgresError(.connection, message: "reader state missing")) }
        return reader
    }

    /// Decodes and routes what has arrived, then reads more, until `isDone` holds (checked after
    /// each batch), the connection fails, or the reading task is cancelled. `asCaller`: the reader
    /// is a caller reading for its own request, not the background reader. Returns true when the
    /// read stopped because `deadline` passed.
    @discardableResult
    private func readLoop(
        _ reader: inout ReaderState, asCaller: Bool, until isDone: (inout State) -> Bool, deadline: (inout State) -> Deadline = { _ in .never }
    ) async -> Bool {
        var wakeups: [UnsafeContinuation<Void, Never>] = []
        var outOfBand: [ConnectionStateMachine.Action] = []
        var effects = RouteEffects()
        while true {
            do {
                let (stop, alone, until) = try state.withLock { state throws(PostgresProtocolError) -> (Bool, Bool, Deadline) in
                    while let message = try reader.decoder.decode(&reader.buffer) {
                        Self.route(state.machine.received(message), &state, &wakeups, &outOfBand, &effects)
                        if state.failure != nil { return (true, false, .never) }
                    }
                    if !wakeups.isEmpty { state.inlineGate.callerResumed() }
                    return (state.failure != nil || isDone(&state), state.inlineGate.allows(inFlight: state.requests.count), deadline(&state))
                }
                reader.buffer.compact()
                deliverOutOfBand(&outOfBand)
                perform(&effects)
                for waiter in wakeups { waiter.resume() }
                wakeups.removeAll(keepingCapacity: true)
                if stop { return false }
                // A caller reading for its own lone request would only wait: its thread may wait
                // for the reply (see `InlineWaitGate`).
                _ = try await transport.read(into: &reader.buffer, maximumBytes: 65536, deadline: until, mayWaitInline: asCaller && alone)
            } catch let error as PostgresProtocolError {
                transport.close()
                fail(PostgresError(.protocolViolation, message: error.description))
                return false
            } catch let error as TransportError where error.kind == .cancelled || error.kind == .timedOut {
                // The reading task was cancelled (its caller waits for a background reader
                // instead), or its caller's deadline passed (it acts on it, then reads again).
                return error.kind == .timedOut
            } catch {
                fail(PostgresError(.connection, message: "connection lost: \(error)"))
                return false
            }
        }
    }

    /// Parks the reader state and passes the reader role to the next waiting request, or to a
    /// background reader when notifications are listened for.
    private func releaseReader(_ reader: ReaderState) {
        let (wake, background) = state.withLock { state -> (UnsafeContinuation<Void, Never>?, Bool) in
            state.reader = reader
            state.readerActive = false
            guard state.failure == nil else { return (nil, false) }
            if let next = Self.takeHandOff(&state) { return (next, false) }
            if state.readsContinuously {
                state.readerActive = true
                return (nil, true)
            }
            return (nil, false)
        }
        wake?.resume()
        if background { startBackgroundReader() }
    }

    /// The waiter of the earliest pending request, which should read next (nil when none waits).
    private static func takeHandOff(_ state: inout State) -> UnsafeContinuation<Void, Never>? {
        guard let id = state.waiters.keys.min() else { return nil }
        return state.waiters.removeValue(forKey: id)
    }
    /// A task that reads while any request waits or notifications are listened for.
    private func startBackgroundReader() {
        Task.detached { [self] in
            guard var reader = takeReader() else { return }
            await readLoop(&reader, asCaller: false) { state in
                !state.readsContinuously && state.waiters.isEmpty
            }
            releaseReader(reader)
        }
    }

    /// What routing left to do after the lock: cancels to send, held writes to flush.
    struct RouteEffects {
        var signals: [UInt64] = []
        var mustFlush = false
    }

    private func perform(_ effects: inout RouteEffects) {
        if effects.signals.isEmpty && !effects.mustFlush { return }
        for target in effects.signals { sendCancelRequest(for: target) }
        if effects.mustFlush { Task { await self.flush() } }
        effects = RouteEffects()
    }

    /// Applies one action of the state machine while the lock is held; continuations to resume,
    /// out-of-band messages and cancel effects are collected for after the lock.
    private static func route(
        _ action: ConnectionStateMachine.Action, _ state: inout State, _ wakeups: inout [UnsafeContinuation<Void, Never>],
        _ outOfBand: inout [ConnectionStateMachine.Action], _ effects: inout RouteEffects
    ) {
        switch action {
        case .none, .ready, .write:
            break
        case .deliver(let id, let event):
            // Mutated in place through the values' accessor: no copy of the request's state (and
            // no coroutine frame, which the keyed accessor's optional allocates on the heap).
            guard let index = state.requests.index(forKey: id), state.requests.values[index].deliver(event) else { return }
            if !state.waiters.isEmpty, let waiter = state.waiters.removeValue(forKey: id) { wakeups.append(waiter) }
        case .complete(let id):
            // A request that might have started a COPY held the stream; it is over now.
            if state.exclusiveHolder == id {
                state.exclusiveHolder = nil
                wakeups += state.blockedSubmitters
                state.blockedSubmitters = []
            }
            if var request = state.requests[id] {
                request.graceTimer?.cancel()
                request.graceTimer = nil
                if request.isAbandoned && (request.outcome == nil || request.isOutcomeDelivered) {
                    state.requests[id] = nil
                } else {
                    request.isComplete = true
                    state.requests[id] = request
                    if !state.waiters.isEmpty, let waiter = state.waiters.removeValue(forKey: id) { wakeups.append(waiter) }
                }
            }
            // The request a cancel waits for starts running, with nothing written after it: signal.
            if let next = state.machine.currentRequest, next == state.cancelTarget, var waiting = state.requests[next],
                waiting.isCancelRequested, !waiting.isCancelSent, waiting.outcome == nil
            {
                waiting.isCancelSent = true
                state.requests[next] = waiting
                state.cancelInFlight = true
                effects.signals.append(next)
            }
            if state.cancelTarget == id, releaseCancelHold(&state) { effects.mustFlush = true }
        case .notice, .notification:
            outOfBand.append(action)
        case .fail(let error):
            failLocked(error, &state, &wakeups)
        }
    }

    private func deliverOutOfBand(_ actions: inout [ConnectionStateMachine.Action]) {
        guard !actions.isEmpty else { return }
        for action in actions {
            switch action {
            case .notice(let diagnostics): noticeContinuation.yield(diagnostics)
            case .notification(let notification): notificationContinuation.yield(notification)
            default: break
            }
        }
        actions.removeAll(keepingCapacity: true)
    }

    private static func failLocked(_ error: PostgresError, _ state: inout State, _ wakeups: inout [UnsafeContinuation<Void, Never>]) {
        if state.failure == nil { state.failure = error }
        wakeups += state.blockedSubmitters + state.drainWaiters
        state.blockedSubmitters = []
        state.drainWaiters = []
        state.machine.failAll()
        wakeups += state.waiters.values
        state.waiters = [:]
    }

    /// Fails the connection: every waiting caller wakes and sees `error`.
    func fail(_ error: PostgresError, closingTransport: Bool = true) {
        var wakeups: [UnsafeContinuation<Void, Never>] = []
        let first = state.withLock { state -> Bool in
            let first = state.failure == nil
            Self.failLocked(error, &state, &wakeups)
            return first
        }
        if first {
            switch error.kind {
            case .protocolViolation: logger.error("protocol violation; connection closed", metadata: ["error": "\(error)"])
            case .connection where error.message == "connection closed": logger.debug("connection closed")
            default: logger.warning("connection lost", metadata: ["error": "\(error)"])
            }
            if closingTransport { transport.close() }
            noticeContinuation.finish()
            notificationContinuation.finish()
        }
        for waiter in wakeups { waiter.resume() }
    }
}
