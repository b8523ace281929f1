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
    typealias Event = ConnectionStateMachine.Event

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
        /// The caller asked to cancel the query.
        var isCancelRequested = false
        /// A CancelRequest went out for it (only once it was the running request).
        var isCancelSent = false
        /// The task that cancels the query when its timeout passes.
        var timer: Task<Void, Never>?
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
    /// appends in order; returns the first id.
    func submit(
        count: Int, timeout: Duration? = nil, exclusive: Bool = false,
        _ encode: (inout ByteBuffer, inout StatementCache) throws(PostgresError) -> Void
    ) async throws(PostgresError) -> UInt64 {
        var registered: (id: UInt64, mustFlush: Bool)?
        while registered == nil {
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
                if exclusive { state.exclusiveHolder = id }
                return (id, state.writes.claimFlush())
            }
            if registered == nil {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                    let wait = state.withLock { state -> Bool in
                        guard state.exclusiveHolder != nil, state.failure == nil else { return false }
                        state.blockedSubmitters.append(continuation)
                        return true
                    }
                    if !wait { continuation.resume() }
                }
            }
        }
        guard let (id, mustFlush) = registered else { throw PostgresError(.usage, message: "request not registered") }
        if let timeout {
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self?.requestCancellation(of: id) }
            }
            let keep = state.withLock { state -> Bool in
                guard state.requests[id] != nil else { return false }
                state.requests[id]?.timer = timer
                return true
            }
            if !keep { timer.cancel() }
        }
        if mustFlush { await flush() }
        return id
    }

    /// Writes everything queued, again and again, until the queue stays empty.
    func flush() async {
        do {
            try await transport.writeQueued(
                take: { state.withLock { $0.writes.nextBatch(stop: $0.failure != nil) } },
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
    /// When the calling task is cancelled, the server is asked to cancel the query (a
    /// CancelRequest on a side connection) and the call goes on waiting for the server's answer,
    /// so the session stays in step: the query ends with a 57014 error, or completes if it was
    /// already done.
    func nextEvents(_ id: UInt64) async throws(PostgresError) -> (events: [Event], isComplete: Bool) {
        while true {
            let cancelled = Task.isCancelled
            if cancelled { requestCancellation(of: id) }
            let step = state.withLock { state -> Step in
                if var request = state.requests[id], !request.events.isEmpty || request.isComplete {
                    let events = request.events
                    if request.isComplete {
                        request.timer?.cancel()
                        state.requests[id] = nil
                    } else {
                        request.events = []
                        state.requests[id] = request
                    }
                    return .events(events, complete: request.isComplete)
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
                await lead(for: id)
            case .wait, .waitForBackgroundReader:
                if case .waitForBackgroundReader = step { startBackgroundReader() }
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            guard let request = state.requests[id], request.events.isEmpty, !request.isComplete,
                                state.failure == nil, state.readerActive
                            else { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.requestCancellation(of: id)
                }
            }
        }
    }

    /// Asks the server to cancel request `id`: at once when it is the request the server is
    /// running, else as soon as it becomes that one (a CancelRequest cancels whatever runs).
    func requestCancellation(of id: UInt64) {
        let send = state.withLock { state -> Bool in
            guard var request = state.requests[id], !request.isComplete, !request.isCancelRequested else { return false }
            request.isCancelRequested = true
            let running = state.machine.currentRequest == id
            request.isCancelSent = running
            state.requests[id] = request
            return running
        }
        if send { sendCancelRequest() }
    }

    /// Sends a CancelRequest with this session's key on a connection of its own; the server
    /// closes that connection without an answer.
    func sendCancelRequest() {
        guard let key = backendKey else { return }
        let endpoint = host.endpoint
        let timeout = configuration.connectTimeout
        Task.detached {
            guard let side = try? await Connection.connect(to: endpoint, options: ConnectOptions(timeout: timeout)) else { return }
            defer { side.close() }
            var message = ByteBuffer()
            FrontendMessage.cancelRequest(key, into: &message)
            let deadline = Deadline.after(.seconds(5))
            try? await side.write(message, deadline: deadline)
            var sink = ByteBuffer()
            _ = try? await side.read(into: &sink, deadline: deadline)  // returns at the server's close
        }
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

    /// Reads as the leader until request `id` has events, then hands the reader role on.
    private func lead(for id: UInt64) async {
        guard var reader = takeReader() else { return }
        await readLoop(&reader, asCaller: true) { state in
            // Earlier requests' rows are buffered on the way: stalling until their consumers
            // read could deadlock a caller that holds an unfinished sequence.
            guard let request = state.requests[id] else { return true }
            return !request.events.isEmpty || request.isComplete
        }
        releaseReader(reader)
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
    /// is a caller reading for its own request, not the background reader.
    private func readLoop(_ reader: inout ReaderState, asCaller: Bool, until isDone: (inout State) -> Bool) async {
        var wakeups: [UnsafeContinuation<Void, Never>] = []
        var outOfBand: [ConnectionStateMachine.Action] = []
        while true {
            do {
                let (stop, alone) = try state.withLock { state throws(PostgresProtocolError) -> (Bool, Bool) in
                    while let message = try reader.decoder.decode(&reader.buffer) {
                        Self.route(state.machine.received(message), &state, &wakeups, &outOfBand)
                        if state.failure != nil { return (true, false) }
                    }
                    if !wakeups.isEmpty { state.inlineGate.callerResumed() }
                    return (state.failure != nil || isDone(&state), state.inlineGate.allows(inFlight: state.requests.count))
                }
                reader.buffer.compact()
                deliverOutOfBand(&outOfBand)
                for waiter in wakeups { waiter.resume() }
                wakeups.removeAll(keepingCapacity: true)
                if stop { return }
                // A caller reading for its own lone request would only wait: its thread may wait
                // for the reply (see `InlineWaitGate`).
                _ = try await transport.read(into: &reader.buffer, maximumBytes: 65536, mayWaitInline: asCaller && alone)
            } catch let error as PostgresProtocolError {
                transport.close()
                fail(PostgresError(.protocolViolation, message: error.description))
                return
            } catch let error as TransportError where error.kind == .cancelled {
                return  // the reading task was cancelled; its caller waits for a background reader instead
            } catch {
                fail(PostgresError(.connection, message: "connection lost: \(error)"))
                return
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

    /// Applies one action of the state machine while the lock is held; continuations to resume
    /// and out-of-band messages are collected for after the lock.
    private static func route(
        _ action: ConnectionStateMachine.Action, _ state: inout State, _ wakeups: inout [UnsafeContinuation<Void, Never>],
        _ outOfBand: inout [ConnectionStateMachine.Action]
    ) {
        switch action {
        case .none, .ready, .write:
            break
        case .deliver(let id, let event):
            // Mutated in place through the dictionary's accessor: no copy of the events.
            guard state.requests[id]?.isAbandoned == false else { return }
            state.requests[id]?.events.append(event)
            if !state.waiters.isEmpty, let waiter = state.waiters.removeValue(forKey: id) { wakeups.append(waiter) }
        case .complete(let id):
            // A request that might have started a COPY held the stream; it is over now.
            if state.exclusiveHolder == id {
                state.exclusiveHolder = nil
                wakeups += state.blockedSubmitters
                state.blockedSubmitters = []
            }
            guard var request = state.requests[id] else { return }
            if request.isAbandoned {
                state.requests[id] = nil
                return
            }
            request.isComplete = true
            state.requests[id] = request
            if !state.waiters.isEmpty, let waiter = state.waiters.removeValue(forKey: id) { wakeups.append(waiter) }
            if let next = state.machine.currentRequest, var waiting = state.requests[next], waiting.isCancelRequested,
                !waiting.isCancelSent
            {
                waiting.isCancelSent = true
                state.requests[next] = waiting
                outOfBand.append(.cancelRunningQuery)
            }
        case .notice, .notification, .cancelRunningQuery:
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
            case .cancelRunningQuery: sendCancelRequest()
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
