import NATSProto
import Synchronization
import Transport

/// Publishes to streams without waiting for each acknowledgement, with at most `maximumPending`
/// outstanding (a publish waits while that many are): the acks come back to one inbox of its
/// own and complete each message's ``PubAckFuture``; one that has no ack within the context's
/// timeout fails with ``JetStreamError/Kind/timedOut``. ``complete()`` waits for every one.
/// As nats.go's `PublishAsync`, with its default of 4,000 pending.
public final class AsyncPublisher: Sendable {
    /// The context it publishes through.
    public let js: JetStreamContext
    /// Acknowledgements outstanding at most.
    public let maximumPending: Int
    /// `<inbox>.` under which each message's reply token is appended.
    let replyPrefix: String
    let subscription: NATSSubscription
    let state = Mutex(State())
    let reader = Mutex<Task<Void, Never>?>(nil)
    let sweeperTask = Mutex<Task<Void, Never>?>(nil)

    struct State: ~Copyable {
        var nextToken: UInt64 = 0
        /// Outstanding messages by reply token; a message leaves when its outcome is in.
        var pending: [UInt64: PubAckFuture.Box] = [:]
        /// When each outstanding message was published, oldest first (tokens rise with time).
        var sentAt: [(token: UInt64, at: ContinuousClock.Instant)] = []
        var sentHead = 0
        /// Publishers waiting for room in the window.
        var roomWaiters: [UnsafeContinuation<Void, Never>] = []
        /// Callers of ``complete()`` waiting for the window to empty.
        var drainWaiters: [UnsafeContinuation<Void, Never>] = []
        var closed: JetStreamError?
    }

    init(js: JetStreamContext, maximumPending: Int, subscription: NATSSubscription, replyPrefix: String) {
        self.js = js
        self.maximumPending = maximumPending
        self.subscription = subscription
        self.replyPrefix = replyPrefix
    }

    /// How long an acknowledgement may take before its future fails with ``JetStreamError/Kind/timedOut``
    /// (the context's timeout): an ack lost with a connection or a dying stream leader never comes.
    var ackTimeout: Duration { js.timeout }

    /// Starts routing acknowledgements to their futures, and failing the ones overdue.
    func start() {
        let sweeper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                guard let self else { return }
                self.failOverdue()
            }
        }
        sweeperTask.withLock { $0 = sweeper }
        let task = Task { [self] in
            do {
                for try await reply in subscription { route(reply) }
                failAll(JetStreamError(.connection, message: "the acknowledgement inbox closed"))
            } catch {
                failAll(JetStreamError(.connection, message: "the acknowledgement inbox failed: \(error)"))
            }
        }
        reader.withLock { $0 = task }
    }

    private func route(_ reply: NATSMessage) {
        guard let dot = reply.subject.lastIndex(of: "."), let token = UInt64(reply.subject[reply.subject.index(after: dot)...]) else { return }
        let outcome: Result<PubAck, JetStreamError>
        if reply.status == 503 {
            outcome = .failure(JetStreamError(.noResponders, code: 503, message: "publish: no stream stores the subject, or its stream has no leader"))
        } else {
            do throws(JetStreamError) {
                outcome = .success(try JetStreamContext.decodePubAck(reply, operation: "publish"))
            } catch {
                outcome = .failure(error)
            }
        }
        finish(token, outcome)
    }

    private func finish(_ token: UInt64, _ outcome: Result<PubAck, JetStreamError>) {
        let (box, room, drained) = state.withLock { state -> (PubAckFuture.Box?, [UnsafeContinuation<Void, Never>], [UnsafeContinuation<Void, Never>]) in
            guard let box = state.pending.removeValue(forKey: token) else { return (nil, [], []) }
            var room: [UnsafeContinuation<Void, Never>] = []
            swap(&room, &state.roomWaiters)
            var drained: [UnsafeContinuation<Void, Never>] = []
            if state.pending.isEmpty { swap(&drained, &state.drainWaiters) }
            return (box, room, drained)
        }
        box?.resolve(outcome)
        for waiter in room { waiter.resume() }
        for waiter in drained { waiter.resume() }
    }

    /// Fails the futures whose acknowledgement is overdue.
    private func failOverdue() {
        let limit = ContinuousClock.now - ackTimeout
        let overdue = state.withLock { state -> [UInt64] in
            var tokens: [UInt64] = []
            while state.sentHead < state.sentAt.count, state.sentAt[state.sentHead].at < limit {
                let token = state.sentAt[state.sentHead].token
                if state.pending[token] != nil { tokens.append(token) }
                state.sentHead += 1
            }
            if state.sentHead > 1024, state.sentHead * 2 > state.sentAt.count {
                state.sentAt.removeFirst(state.sentHead)
                state.sentHead = 0
            }
            return tokens
        }
        let timeout = ackTimeout
        for token in overdue {
            finish(token, .failure(JetStreamError(.timedOut, message: "publish: no acknowledgement within \(timeout)")))
        }
    }

    private func failAll(_ error: JetStreamError) {
        let tokens = state.withLock { state -> [UInt64] in
            state.closed = error
            return Array(state.pending.keys)
        }
        for token in tokens { finish(token, .failure(error)) }
    }

    /// Publishes without waiting for the acknowledgement (only for room in the window);
    /// the future gives it, or the stream's refusal.
    @discardableResult
    public func publish<Payload: Collection<UInt8> & Sendable>(_ payload: Payload, to subject: String, headers: NATSHeaders? = nil)
        async throws(JetStreamError) -> PubAckFuture
    {
        while true {
            let box = PubAckFuture.Box()
            let token = try state.withLock { state throws(JetStreamError) -> UInt64? in
                if let closed = state.closed { throw closed }
                guard state.pending.count < maximumPending else { return nil }
                state.nextToken &+= 1
                state.pending[state.nextToken] = box
                state.sentAt.append((state.nextToken, .now))
                return state.nextToken
            }
            if let token {
                do {
                    try await js.client.publish(payload, to: subject, replyTo: replyPrefix + String(token), headers: headers)
                } catch {
                    finish(token, .failure(JetStreamError.from(error, doing: "publish to \(subject)")))
                }
                return PubAckFuture(box: box)
            }
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let wait = state.withLock { state -> Bool in
                    guard state.closed == nil, state.pending.count >= maximumPending else { return false }
                    state.roomWaiters.append(continuation)
                    return true
                }
                if !wait { continuation.resume() }
            }
        }
    }

    /// Waits until every message published so far has its acknowledgement (or its failure).
    public func complete() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let wait = state.withLock { state -> Bool in
                guard !state.pending.isEmpty else { return false }
                state.drainWaiters.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// Messages whose acknowledgement has not come yet.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Stops listening for acknowledgements; outstanding futures fail.
    public func close() async {
        try? await subscription.unsubscribe()
        reader.withLock { $0?.cancel() }
        sweeperTask.withLock { $0?.cancel() }
        failAll(JetStreamError(.connection, message: "the publisher was closed"))
    }
}

/// The acknowledgement of one asynchronous publish.
public struct PubAckFuture: Sendable {
    let box: Box

    /// Waits for the stream's acknowledgement; throws its refusal.
    public func value() async throws(JetStreamError) -> PubAck {
        try await box.value().get()
    }

    /// Where the outcome lands; only the future holds it once the outcome is in.
    final class Box: Sendable {
        private let state = Mutex<(outcome: Result<PubAck, JetStreamError>?, waiters: [UnsafeContinuation<Result<PubAck, JetStreamError>, Never>])>((nil, []))

        func resolve(_ outcome: Result<PubAck, JetStreamError>) {
            let waiters = state.withLock { state -> [UnsafeContinuation<Result<PubAck, JetStreamError>, Never>] in
                guard state.outcome == nil else { return [] }
                state.outcome = outcome
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: outcome) }
        }

        func value() async -> Result<PubAck, JetStreamError> {
            await withUnsafeContinuation { continuation in
                let ready = state.withLock { state -> Result<PubAck, JetStreamError>? in
                    if let outcome = state.outcome { return outcome }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

extension JetStreamContext {
    /// A publisher that does not wait for each acknowledgement, with at most `maximumPending`
    /// outstanding (nats.go's default, 4,000).
    public func makeAsyncPublisher(maximumPending: Int = 4000) async throws(JetStreamError) -> AsyncPublisher {
        guard maximumPending > 0 else { throw JetStreamError(.usage, message: "maximumPending must be positive, not \(maximumPending)") }
        let inbox = client.newInbox()
        let subscription: NATSSubscription
        do {
            subscription = try await client.subscribe(to: inbox + ".*", pendingLimits: NATSPendingLimits(messages: -1, bytes: -1))
        } catch {
            throw JetStreamError.from(error, doing: "subscribing the acknowledgement inbox")
        }
        let publisher = AsyncPublisher(js: self, maximumPending: maximumPending, subscription: subscription, replyPrefix: inbox + ".")
        publisher.start()
        return publisher
    }
}
