import NATSProto
import Synchronization
import Transport

/// The starting point and filter of an ordered consumer.
public struct OrderedConsumerConfig: Sendable {
    public var filterSubject: String?
    public var deliverPolicy: DeliverPolicy = .all
    public var optStartSequence: UInt64?
    public var headersOnly = false
    /// How often the server sends an idle heartbeat; three missed ones recreate the consumer.
    public var heartbeat: Duration = .seconds(5)

    public init(filterSubject: String? = nil, deliverPolicy: DeliverPolicy = .all) {
        self.filterSubject = filterSubject
        self.deliverPolicy = deliverPolicy
    }
}

/// What an ordered consumer delivers: the messages in stream order, each once, and a marker when
/// it has delivered everything the stream held when it started.
public enum OrderedDelivery: Sendable {
    case message(JetStreamMessage)
    /// Every message stored before the consumer started has been delivered.
    case caughtUp
}

/// Tracks an ordered consumer's place, so that a gap, a deleted consumer or silence recreates it
/// from the next stream sequence.
struct OrderedPosition {
    var expectedConsumerSequence: UInt64 = 1
    var lastStreamSequence: UInt64 = 0
    var caughtUp = false
    /// The buffer was full: wait before recreating, so the reader can drain it.
    var readerBehind = false
}

extension JetStreamContext {
    /// An ordered consumer (ADR-17): an ephemeral push consumer with flow control and idle
    /// heartbeats, no acks, in memory. Messages come in stream order, each once; when one is
    /// missing (its consumer sequence skips), the consumer is gone or heartbeats stop, it is
    /// recreated from the next stream sequence. Ends when the caller stops iterating.
    public func orderedMessages(stream: String, _ config: OrderedConsumerConfig = OrderedConsumerConfig()) async throws(JetStreamError)
        -> AsyncThrowingStream<OrderedDelivery, any Error>
    {
        try JetStreamName.validate(stream, as: "stream")
        // A bounded buffer: when the reader falls behind, the consumer is recreated from the first
        // message the buffer could not take (after a pause), so nothing is lost or kept unbounded.
        let (deliveries, sink) = AsyncThrowingStream<OrderedDelivery, any Error>.makeStream(bufferingPolicy: .bufferingOldest(4096))
        // The first consumer is made before returning, so a missing stream is the caller's error.
        let first = try await startOrdered(stream: stream, config, from: nil)
        let js = self
        let worker = Task {
            var run = first
            var position = OrderedPosition()
            if run.pending == 0 {
                position.caughtUp = true
                sink.yield(.caughtUp)
            }
            while !Task.isCancelled {
                let ended = await js.runOrdered(run, config: config, position: &position, sink: sink)
                try? await run.subscription.unsubscribe()
                try? await js.deleteConsumer(run.name, stream: stream)
                if ended || Task.isCancelled { break }
                if position.readerBehind {
                    position.readerBehind = false
                    try? await Task.sleep(for: .milliseconds(200))
                }
                // Recreate from the next stream sequence; wait a little when the server refuses.
                var attempt = 0
                while !Task.isCancelled {
                    do throws(JetStreamError) {
                        run = try await js.startOrdered(stream: stream, config, from: position.lastStreamSequence + 1)
                        position.expectedConsumerSequence = 1
                        break
                    } catch {
                        attempt += 1
                        if error.is(.streamNotFound) || attempt > 30 || js.client.isClosed {
                            sink.finish(throwing: error)
                            return
                        }
                        try? await Task.sleep(for: .milliseconds(min(1000, 50 * attempt)))
                    }
                }
            }
            sink.finish()
        }
        sink.onTermination = { _ in worker.cancel() }
        return deliveries
    }

    struct OrderedRun: Sendable {
        var name: String
        var subscription: NATSSubscription
        var pending: UInt64
    }

    /// Creates the push consumer (from `sequence` when given) on an inbox of its own.
    func startOrdered(stream: String, _ config: OrderedConsumerConfig, from sequence: UInt64?) async throws(JetStreamError) -> OrderedRun {
        let inbox = client.newInbox()
        let subscription: NATSSubscription
        do {
            subscription = try await client.subscribe(to: inbox, pendingLimits: NATSPendingLimits(messages: -1, bytes: 256 << 20))
        } catch {
            throw JetStreamError.from(error, doing: "an ordered consumer's inbox")
        }
        var consumer = ConsumerConfig(ackPolicy: .none, filterSubject: config.filterSubject)
        consumer.deliverSubject = inbox
        consumer.flowControl = true
        consumer.idleHeartbeat = config.heartbeat
        consumer.memoryStorage = true
        consumer.replicas = 1
        consumer.maxDeliver = 1
        consumer.headersOnly = config.headersOnly
        consumer.inactiveThreshold = .seconds(300)
        if let sequence {
            consumer.deliverPolicy = .byStartSequence
            consumer.optStartSequence = sequence
        } else {
            consumer.deliverPolicy = config.deliverPolicy
            consumer.optStartSequence = config.optStartSequence
        }
        do {
            let info = try await createConsumer(consumer, stream: stream)
            return OrderedRun(name: info.name, subscription: subscription, pending: info.pendingCount)
        } catch {
            try? await subscription.unsubscribe()
            throw error
        }
    }

    /// Delivers what `run`'s subscription receives until a gap, silence, or the end; returns
    /// true when iteration should stop for good (the caller went away).
    func runOrdered(
        _ run: OrderedRun, config: OrderedConsumerConfig, position: inout OrderedPosition,
        sink: AsyncThrowingStream<OrderedDelivery, any Error>.Continuation
    ) async -> Bool {
        let lastActivity = Mutex(ContinuousClock.now)
        let silent = Mutex(false)
        let subscription = run.subscription
        // Three heartbeats without anything from the server: the consumer is gone or stuck.
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: config.heartbeat)
                if ContinuousClock.now - lastActivity.withLock({ $0 }) > config.heartbeat * 3 {
                    silent.withLock { $0 = true }
                    try? await subscription.unsubscribe()
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        do {
            for try await message in subscription {
                lastActivity.withLock { $0 = .now }
                if message.status == 100 {
                    // Flow control (and a stalled consumer's heartbeat) wants an empty reply.
                    if let reply = message.replyTo { try? await client.publish([UInt8](), to: reply) }
                    continue
                }
                if let status = message.status, status >= 400 { return false }  // consumer deleted (409 …): recreate
                guard let delivered = try? JetStreamMessage(message, client: client) else { continue }
                guard delivered.metadata.consumerSequence == position.expectedConsumerSequence else { return false }  // a gap
                position.expectedConsumerSequence += 1
                position.lastStreamSequence = delivered.metadata.streamSequence
                switch sink.yield(.message(delivered)) {
                case .terminated:
                    return true
                case .dropped:
                    // The reader is behind: start again from this message once it has caught up.
                    position.lastStreamSequence = delivered.metadata.streamSequence - 1
                    position.readerBehind = true
                    return false
                default:
                    break
                }
                if !position.caughtUp, delivered.metadata.pending == 0 {
                    // A marker the full buffer could not take comes again after the recreation.
                    if case .enqueued = sink.yield(.caughtUp) { position.caughtUp = true }
                }
            }
        } catch {
            return false
        }
        // The subscription ended: the watchdog found the consumer silent (recreate it), the
        // caller went away, or the connection closed (stop).
        if silent.withLock({ $0 }) { return false }
        return Task.isCancelled || client.isClosed
    }
}

extension JetStreamContext {
    /// An ordered consumer's deliveries as a watcher's events: `caughtUp` for the end of the
    /// initial data, `event(message)` for each message (nil leaves it out; a throw ends the
    /// sequence with that error). The consumer goes when the caller stops iterating. The one
    /// forwarding loop of KV and Object Store watches.
    func watchEvents<Event: Sendable>(
        stream: String, _ config: OrderedConsumerConfig, caughtUp: Event, event: @escaping @Sendable (JetStreamMessage) throws -> Event?
    ) async throws(JetStreamError) -> AsyncThrowingStream<Event, any Error> {
        let deliveries = try await orderedMessages(stream: stream, config)
        let (events, sink) = AsyncThrowingStream<Event, any Error>.makeStream()
        let forwarder = Task {
            do {
                for try await delivery in deliveries {
                    switch delivery {
                    case .caughtUp:
                        sink.yield(caughtUp)
                    case .message(let message):
                        guard let next = try event(message) else { continue }
                        if case .terminated = sink.yield(next) { return }
                    }
                }
                sink.finish()
            } catch {
                sink.finish(throwing: error)
            }
        }
        sink.onTermination = { _ in forwarder.cancel() }
        return events
    }
}
