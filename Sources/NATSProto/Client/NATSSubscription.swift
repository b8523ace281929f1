import Synchronization
import Transport

/// A message delivered to a subscription or as the reply to a request.
public struct NATSMessage: Sendable, Equatable {
    /// The subject it was published to.
    public var subject: String
    /// Where to send a reply, if the publisher wants one.
    public var replyTo: String?
    /// Headers (HMSG), including an inline status such as 503.
    public var headers: NATSHeaders?
    /// The payload: a slice of the client's read buffer, not a copy.
    public var payload: ByteBuffer

    /// The inline status of the header block, if any (e.g. 503 no responders, 408 timeout).
    public var status: Int? { headers?.status }
    /// The payload as UTF-8 text.
    public var text: String { String(decoding: payload.readableBytesView, as: UTF8.self) }

    /// Creates a message.
    public init(subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer) {
        self.subject = subject
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }
}

/// A subscription: an asynchronous sequence of the messages the server delivers for it.
///
/// Messages wait in the subscription until the consumer takes them, up to its pending limits
/// (messages and bytes); past them, messages are dropped, counted in ``droppedCount`` and reported
/// as a ``NATSEvent/slowConsumer(subject:sid:dropped:)`` event, never silently. One task iterates
/// a subscription at a time. The sequence ends after ``unsubscribe()``, after ``drain()`` once
/// the messages in flight were consumed, after the auto-unsubscribe count was reached, and when
/// the client closes (throwing if it closed because of an error). Cancelling the task that waits
/// for the next message unsubscribes too: the server stops sending.
public final class NATSSubscription: AsyncSequence, Sendable {
    public typealias Element = NATSMessage

    /// The subject (wildcards allowed).
    public let subject: String
    /// The queue group, if any: each message goes to one member of the group.
    public let queue: String?
    /// The subscription id on the connection.
    public let sid: UInt64
    private let client: NATSClient
    private let state: Mutex<Guarded>

    typealias End = NATSSubscriptionState.End

    /// The subscription's state and, beside it, its parked consumer.
    struct Guarded: ~Copyable {
        var subscription: NATSSubscriptionState
        var consumer: UnsafeContinuation<Void, Never>?

        /// The parked consumer, when the state says to wake it.
        mutating func consumer(if wake: Bool) -> UnsafeContinuation<Void, Never>? {
            wake ? consumer.take() : nil
        }
    }

    /// Reconnects this subscription lived through: each one may have lost the messages published
    /// while the client was away (core NATS keeps nothing), so a consumer that needs them
    /// resynchronises when this grows. The client also reports each as a
    /// ``NATSEvent/subscriptionGap(subject:sid:)`` event.
    public var gapCount: Int { gaps.load(ordering: .acquiring) }
    private let gaps = Atomic<Int>(0)

    /// The client subscribed again after a reconnect.
    func noteGap() { gaps.add(1, ordering: .releasing) }

    /// What a delivery did, for the client's bookkeeping.
    struct Delivery {
        var becameSlow = false
        var reachedMaximum = false
        /// The waiting consumer, for the reader to wake once it has handed over everything it read.
        var consumer: UnsafeContinuation<Void, Never>?
    }

    init(client: NATSClient, subject: String, queue: String?, sid: UInt64, limits: NATSPendingLimits) {
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.state = Mutex(Guarded(subscription: NATSSubscriptionState(limits: limits)))
    }

    /// Messages delivered so far, dropped ones included (the server's count).
    public var deliveredCount: Int { state.withLock { $0.subscription.delivered } }
    /// Messages dropped because the pending limits were reached.
    public var droppedCount: Int { state.withLock { $0.subscription.dropped } }
    /// Messages and payload bytes waiting for the consumer.
    public var pending: (messages: Int, bytes: Int) { state.withLock { ($0.subscription.messages.count, $0.subscription.bytes) } }
    /// The pending limits in force.
    public var pendingLimits: NATSPendingLimits {
        get { state.withLock { $0.subscription.limits } }
        set { state.withLock { $0.subscription.limits = newValue } }
    }

    /// Stops the subscription at once: the server is told, messages not yet taken are discarded
    /// and the sequence ends.
    public func unsubscribe() async throws(NATSError) {
        try await client.unsubscribe(self, after: nil)
    }

    /// Ends the subscription after `count` messages in all (those already delivered count);
    /// the limit is kept across reconnects, and the sequence ends when it is reached.
    public func unsubscribe(after count: Int) async throws(NATSError) {
        guard count > 0 else { throw NATSError(.usage, "unsubscribe(after:) needs a positive count, not \(count)") }
        try await client.unsubscribe(self, after: count)
    }

    /// Stops the interest at the server, waits for the messages already on their way, and ends
    /// the sequence once the consumer has taken every one of them.
    public func drain() async throws(NATSError) {
        try await client.drain(self)
    }

    // MARK: - Called by the client

    /// Hands a message over (from the client's reader); the caller resumes `consumer`.
    func deliver(_ message: consuming NATSMessage) -> Delivery {
        // Moved, not copied, into the buffer: a copy costs a retain and a release of every field.
        var handed: NATSMessage? = consume message
        return state.withLock { state -> Delivery in
            guard let message = handed.take() else { return Delivery() }
            let outcome = state.subscription.deliver(message)
            return Delivery(
                becameSlow: outcome.becameSlow, reachedMaximum: outcome.reachedMaximum, consumer: state.consumer(if: outcome.wakeConsumer))
        }
    }

    /// Sets the auto-unsubscribe count; true when it is already reached.
    func setMaximum(_ maximum: Int) -> Bool {
        let (reached, consumer) = state.withLock { state -> (Bool, UnsafeContinuation<Void, Never>?) in
            let outcome = state.subscription.setMaximum(maximum)
            return (outcome.reached, state.consumer(if: outcome.wakeConsumer))
        }
        consumer?.resume()
        return reached
    }

    /// Messages still to deliver before the auto-unsubscribe count, for a resubscription.
    var remaining: Int? { state.withLock { $0.subscription.remaining } }

    /// Ends the sequence; `discarding` drops the messages not yet taken.
    func finish(_ end: End, discarding: Bool) {
        let consumer = state.withLock { state in state.consumer(if: state.subscription.finish(end, discarding: discarding)) }
        consumer?.resume()
    }

    /// Ends the subscription because the iterating task was cancelled.
    func endByCancellation() {
        client.removeSubscription(self, sendUnsubscribe: true)
        finish(.finished, discarding: true)
    }

    /// Whether the sequence has ended and every message was taken.
    var isConsumed: Bool { state.withLock { $0.subscription.isConsumed } }

    // MARK: - Iteration

    /// Swaps the waiting messages into `batch` (one lock for all of them).
    private func take(into batch: inout [NATSMessage]) -> NATSSubscriptionState.Take {
        state.withLock { $0.subscription.take(into: &batch) }
    }

    private func park() async throws(NATSError) {
        guard state.withLock({ $0.subscription.startIterating() }) else {
            throw NATSError(.usage, "subscription \(sid) on \"\(subject)\" is already being iterated by another task")
        }
        defer { state.withLock { $0.subscription.stopIterating() } }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let parked = state.withLock { state -> Bool in
                    guard state.subscription.consumerParks(cancelled: Task.isCancelled) else { return false }
                    state.consumer = continuation
                    return true
                }
                if !parked { continuation.resume() }
            }
        } onCancel: {
            let consumer = state.withLock { state in state.consumer(if: state.subscription.consumerCancelled()) }
            consumer?.resume()
        }
    }

    /// Iterates the messages.
    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline let subscription: NATSSubscription
        /// Messages taken from the subscription in one go, handed out from `index` on.
        @usableFromInline var batch: [NATSMessage] = []
        @usableFromInline var index = 0

        init(subscription: NATSSubscription) {
            self.subscription = subscription
        }

        /// The next message; nil once the subscription has ended (or the task was cancelled).
        /// A message already taken is returned inline, on the caller's executor: no call, no
        /// executor switch; only an empty batch goes to the subscription.
        @inlinable
        nonisolated(nonsending) public mutating func next() async throws -> NATSMessage? {
            if index < batch.count {
                index += 1
                return batch[index - 1]
            }
            return try await refill()
        }

        /// The same, as `for try await` calls it (``next()`` runs on the caller's isolation).
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> NATSMessage? {
            try await next()
        }

        /// Takes the messages waiting, or waits for some.
        @usableFromInline
        nonisolated(nonsending) mutating func refill() async throws -> NATSMessage? {
            batch.removeAll(keepingCapacity: true)
            index = 0
            while true {
                switch subscription.take(into: &batch) {
                case .messages:
                    index = 1
                    return batch[0]
                case .end(let error?):
                    throw error
                case .end(nil):
                    return nil
                case .wait:
                    if Task.isCancelled {
                        // The consumer is gone: the server stops sending (UNSUB).
                        subscription.endByCancellation()
                        return nil
                    }
                    try await subscription.park()
                }
            }
        }
    }

    /// An iterator; one task iterates at a time.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(subscription: self) }
}
