/// One subscription's messages waiting for its consumer, its pending limits, its
/// auto-unsubscribe count and how it ended: a value with no continuation, which the
/// subscription object keeps under its lock beside the parked consumer. Each input says whether
/// the consumer must be woken; tests drive it message by message.
struct NATSSubscriptionState: Sendable {
    /// How the sequence ends.
    enum End: Sendable, Equatable {
        case finished
        case failed(NATSError)
    }

    /// What a delivery did.
    struct Delivery: Sendable, Equatable {
        /// The subscription crossed a pending limit: report a slow consumer (once per episode).
        var becameSlow = false
        /// The auto-unsubscribe count was reached: the subscription is over.
        var reachedMaximum = false
        /// The consumer is parked: wake it (after the rest of the read is handed over).
        var wakeConsumer = false
    }

    /// What the consumer finds when it looks.
    enum Take: Sendable, Equatable {
        /// Messages were swapped into its batch.
        case messages
        /// The sequence is over (with the error that ended it, if any).
        case end(NATSError?)
        /// Nothing yet: park.
        case wait
    }

    private(set) var messages: [NATSMessage] = []
    private(set) var bytes = 0
    /// Read-buffer storage the waiting messages keep alive beyond their own bytes: a payload is
    /// a slice of the buffer it was read into, and pins all of it. Counted once per storage run
    /// (the messages of one read come together).
    private(set) var pinnedBytes = 0
    private var lastPinned: ObjectIdentifier?
    var limits: NATSPendingLimits
    private(set) var end: End?
    /// Messages the server delivered, dropped ones included.
    private(set) var delivered = 0
    /// The auto-unsubscribe count, when one was set.
    private(set) var maximum: Int?
    private(set) var dropped = 0
    private(set) var isSlow = false
    /// Whether the consumer is parked (its continuation is the subscription object's).
    private(set) var consumerParked = false
    /// Whether a task iterates the sequence now (one may at a time).
    private(set) var isIterating = false

    init(limits: NATSPendingLimits) {
        self.limits = limits
    }

    /// A message arrived for the subscription.
    mutating func deliver(_ message: consuming NATSMessage) -> Delivery {
        var outcome = Delivery()
        guard end == nil else { return outcome }
        delivered += 1
        let size = message.payload.readableBytes
        let overMessages = limits.messages >= 0 && messages.count >= limits.messages
        let overBytes = limits.bytes >= 0 && bytes + size > limits.bytes
        if overMessages || overBytes {
            dropped += 1
            outcome.becameSlow = !isSlow
            isSlow = true
        } else {
            // The consumer is behind and the pinned read buffers would pass a quarter of the
            // byte limit: keep a copy of the payload instead of its read buffer, so memory stays
            // within about 1.25 times the limit rather than a multiple of it.
            let storage = message.payload.storageIdentity
            if storage != lastPinned {
                let pin = message.payload.capacity
                if limits.bytes >= 0, pinnedBytes + pin > limits.bytes / 4, pin > size {
                    message.payload = message.payload.detached()
                } else {
                    pinnedBytes += pin
                    lastPinned = storage
                }
            }
            messages.append(message)
            bytes += size
        }
        if let maximum, delivered >= maximum {
            end = .finished
            outcome.reachedMaximum = true
        }
        outcome.wakeConsumer = takeParkedConsumer()
        return outcome
    }

    /// Sets the auto-unsubscribe count. `reached` when the deliveries already reach it (the
    /// subscription is over); `wakeConsumer` when its parked consumer must see that.
    mutating func setMaximum(_ maximum: Int) -> (reached: Bool, wakeConsumer: Bool) {
        self.maximum = maximum
        guard delivered >= maximum, end == nil else { return (false, false) }
        end = .finished
        return (true, takeParkedConsumer())
    }

    /// Messages still to deliver before the auto-unsubscribe count, for a resubscription.
    var remaining: Int? { maximum.map { Swift.max(0, $0 - delivered) } }

    /// Ends the sequence (the first end counts); `discarding` drops the messages not yet taken.
    /// True when the parked consumer must be woken.
    mutating func finish(_ end: End, discarding: Bool) -> Bool {
        if self.end == nil { self.end = end }
        if discarding {
            messages.removeAll()
            bytes = 0
            pinnedBytes = 0
            lastPinned = nil
        }
        return takeParkedConsumer()
    }

    /// Whether the sequence has ended and every message was taken.
    var isConsumed: Bool { end != nil && messages.isEmpty }

    /// Swaps the waiting messages into `batch` (one lock for all of them).
    mutating func take(into batch: inout [NATSMessage]) -> Take {
        if !messages.isEmpty {
            swap(&messages, &batch)
            bytes = 0
            pinnedBytes = 0
            lastPinned = nil
            isSlow = false
            return .messages
        }
        switch end {
        case .finished?: return .end(nil)
        case .failed(let error)?: return .end(error)
        case nil: return .wait
        }
    }

    /// A task starts iterating; false when another one already does.
    mutating func startIterating() -> Bool {
        if isIterating { return false }
        isIterating = true
        return true
    }

    /// The iterating task stopped waiting.
    mutating func stopIterating() { isIterating = false }

    /// The consumer is about to park: true when it must (nothing to take, not over, not cancelled).
    mutating func consumerParks(cancelled: Bool) -> Bool {
        if !messages.isEmpty || end != nil || cancelled { return false }
        consumerParked = true
        return true
    }

    /// The parked consumer's task was cancelled: true when it must be woken.
    mutating func consumerCancelled() -> Bool { takeParkedConsumer() }

    private mutating func takeParkedConsumer() -> Bool {
        defer { consumerParked = false }
        return consumerParked
    }
}
