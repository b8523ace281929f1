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
    private let state: Mutex<State>

    enum End: Sendable {
        case finished
        case failed(NATSError)
    }

    struct State {
        var messages: [NATSMessage] = []
        var bytes = 0
        var limits: NATSPendingLimits
        var consumer: UnsafeContinuation<Void, Never>?
        var iterating = false
        var end: End?
        var delivered = 0
        var maximum: Int?
        var dropped = 0
        var isSlow = false
    }

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
        self.state = Mutex(State(limits: limits))
    }

    /// Messages delivered so far, dropped ones included (the server's count).
    public var deliveredCount: Int { state.withLock { $0.delivered } }
    /// Messages dropped because the pending limits were reached.
    public var droppedCount: Int { state.withLock { $0.dropped } }
    /// Messages and payload bytes waiting for the consumer.
    public var pending: (messages: Int, bytes: Int) { state.withLock { ($0.messages.count, $0.bytes) } }
    /// The pending limits in force.
    public var pendingLimits: NATSPendingLimits {
        get { state.withLock { $0.limits } }
        set { state.withLock { $0.limits = newValue } }
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
    func deliver(_ message: NATSMessage) -> Delivery {
        var outcome = Delivery()
        outcome.consumer = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            guard state.end == nil else { return nil }
            state.delivered += 1
            let size = message.payload.readableBytes
            let overMessages = state.limits.messages >= 0 && state.messages.count >= state.limits.messages
            let overBytes = state.limits.bytes >= 0 && state.bytes + size > state.limits.bytes
            if overMessages || overBytes {
                state.dropped += 1
                outcome.becameSlow = !state.isSlow
                state.isSlow = true
            } else {
                state.messages.append(message)
                state.bytes += size
            }
            if let maximum = state.maximum, state.delivered >= maximum {
                state.end = .finished
                outcome.reachedMaximum = true
            }
            let consumer = state.consumer
            state.consumer = nil
            return consumer
        }
        return outcome
    }

    /// Sets the auto-unsubscribe count; true when it is already reached.
    func setMaximum(_ maximum: Int) -> Bool {
        let (reached, consumer) = state.withLock { state -> (Bool, UnsafeContinuation<Void, Never>?) in
            state.maximum = maximum
            guard state.delivered >= maximum, state.end == nil else { return (false, nil) }
            state.end = .finished
            defer { state.consumer = nil }
            return (true, state.consumer)
        }
        consumer?.resume()
        return reached
    }

    /// Messages still to deliver before the auto-unsubscribe count, for a resubscription.
    var remaining: Int? {
        state.withLock { state in state.maximum.map { Swift.max(0, $0 - state.delivered) } }
    }

    /// Ends the sequence; `discarding` drops the messages not yet taken.
    func finish(_ end: End, discarding: Bool) {
        let consumer = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            if state.end == nil { state.end = end }
            if discarding {
                state.messages.removeAll()
                state.bytes = 0
            }
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume()
    }

    /// Ends the subscription because the iterating task was cancelled.
    func endByCancellation() {
        client.removeSubscription(self, sendUnsubscribe: true)
        finish(.finished, discarding: true)
    }

    /// Whether the sequence has ended and every message was taken.
    var isConsumed: Bool { state.withLock { $0.end != nil && $0.messages.isEmpty } }

    // MARK: - Iteration

    private enum Take {
        case messages
        case end(NATSError?)
        case wait
    }

    /// Swaps the waiting messages into `batch` (one lock for all of them).
    private func take(into batch: inout [NATSMessage]) -> Take {
        state.withLock { state in
            if !state.messages.isEmpty {
                swap(&state.messages, &batch)
                state.bytes = 0
                state.isSlow = false
                return .messages
            }
            switch state.end {
            case .finished?: return .end(nil)
            case .failed(let error)?: return .end(error)
            case nil: return .wait
            }
        }
    }

    private func park() async throws(NATSError) {
        let busy = state.withLock { state -> Bool in
            if state.iterating { return true }
            state.iterating = true
            return false
        }
        if busy { throw NATSError(.usage, "subscription \(sid) on \"\(subject)\" is already being iterated by another task") }
        defer { state.withLock { $0.iterating = false } }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if !state.messages.isEmpty || state.end != nil || Task.isCancelled { return true }
                    state.consumer = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let consumer = state.withLock { state -> UnsafeContinuation<Void, Never>? in
                defer { state.consumer = nil }
                return state.consumer
            }
            consumer?.resume()
        }
    }

    /// Iterates the messages.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let subscription: NATSSubscription
        var batch: [NATSMessage] = []
        var index = 0

        /// The next message; nil once the subscription has ended (or the task was cancelled).
        public mutating func next() async throws -> NATSMessage? {
            if index < batch.count {
                index += 1
                return batch[index - 1]
            }
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
