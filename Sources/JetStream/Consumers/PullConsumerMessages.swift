import Foundation
import NATSProto
import Synchronization
import Transport

/// How a continuous pull keeps messages coming (ADR-37).
public struct ConsumeOptions: Sendable {
    /// Messages asked for in flight at most.
    public var batch = 500
    /// Ask for more once this many or fewer are still owed (half the batch by default).
    public var threshold: Int?
    /// Bytes asked for per request, when bounded.
    public var maxBytes: Int?
    /// How long each pull request waits on the server.
    public var expires: Duration = .seconds(30)
    /// The server's idle heartbeat; two missed ones re-issue the pull.
    public var heartbeat: Duration = .seconds(15)

    public init(batch: Int = 500) {
        self.batch = batch
    }
}

/// A pull consumer's messages as an endless sequence: pull requests are kept topped up as the
/// messages are taken (so a slow reader slows the pulls, nothing piles up), status messages are
/// handled on the way, and a pull that went silent (two missed heartbeats, a lost connection)
/// is issued again. Ends with an error when the consumer is deleted or its limits refuse the
/// requests; ends when the reader stops.
public struct PullConsumerMessages: AsyncSequence, Sendable {
    public typealias Element = JetStreamMessage

    let js: JetStreamContext
    let stream: String
    let consumer: String
    let options: ConsumeOptions

    public func makeAsyncIterator() -> Iterator { Iterator(js: js, stream: stream, consumer: consumer, options: options) }

    /// The state shared with the heartbeat watchdog; unsubscribes when the iterator goes away.
    final class Session: Sendable {
        struct Counters {
            /// Messages asked for and not yet received (or released by a status).
            var owed = 0
            var lastActivity = ContinuousClock.now
            /// 503s in a row: the consumer has had no leader for that many pulls.
            var unavailableStreak = 0
        }

        let subscription: NATSSubscription
        let counters = Mutex(Counters())
        let watchdog = Mutex<Task<Void, Never>?>(nil)

        init(subscription: NATSSubscription) { self.subscription = subscription }

        deinit {
            watchdog.withLock { $0?.cancel() }
            let subscription = subscription
            Task { try? await subscription.unsubscribe() }
        }
    }

    public struct Iterator: AsyncIteratorProtocol {
        let js: JetStreamContext
        let stream: String
        let consumer: String
        let options: ConsumeOptions
        var session: Session?
        var messages: NATSSubscription.AsyncIterator?

        init(js: JetStreamContext, stream: String, consumer: String, options: ConsumeOptions) {
            self.js = js
            self.stream = stream
            self.consumer = consumer
            self.options = options
        }

        var threshold: Int { options.threshold ?? options.batch / 2 }

        public mutating func next() async throws -> JetStreamMessage? {
            if session == nil { try await start() }
            guard let session else { return nil }
            while true {
                guard let message = try await messages?.next() else { return nil }
                session.counters.withLock { $0.lastActivity = .now }
                if let status = message.status {
                    try await handle(status: status, message, session)
                    continue
                }
                let owed = session.counters.withLock { counters -> Int in
                    counters.owed = Swift.max(0, counters.owed - 1)
                    counters.unavailableStreak = 0
                    return counters.owed
                }
                if owed <= threshold { try await pull(session) }
                return try JetStreamMessage(message, client: js.client)
            }
        }

        private mutating func start() async throws {
            try JetStreamName.validate(stream, as: "stream")
            try JetStreamName.validate(consumer, as: "consumer")
            guard options.batch > 0, options.heartbeat * 2 <= options.expires else {
                throw JetStreamError(.usage, message: "consume needs a positive batch and a heartbeat at most half of expires")
            }
            let subscription: NATSSubscription
            do {
                subscription = try await js.client.subscribe(to: js.client.newInbox(), pendingLimits: NATSPendingLimits(messages: -1, bytes: -1))
            } catch {
                throw JetStreamError.from(error, doing: "consuming \(consumer)")
            }
            let session = Session(subscription: subscription)
            self.session = session
            messages = subscription.makeAsyncIterator()
            try await pull(session)
            let heartbeat = options.heartbeat
            let js = self.js
            let subject = pullSubject
            let options = self.options
            // Two heartbeats of silence: the pull is lost (a reconnect, a server restart); ask again.
            let watchdog = Task { [weak session] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: heartbeat)
                    guard let session else { return }
                    let (silent, owed) = session.counters.withLock { ($0.lastActivity.duration(to: .now) > heartbeat * 2, $0.owed) }
                    guard silent else { continue }
                    session.counters.withLock { $0.owed = 0; $0.lastActivity = .now }
                    let body = Self.request(forMessages: Swift.max(owed, 1), options)
                    try? await js.client.publish(body, to: subject, replyTo: session.subscription.subject)
                    session.counters.withLock { $0.owed = Swift.max(owed, 1) }
                }
            }
            session.watchdog.withLock { $0 = watchdog }
        }

        var pullSubject: String { js.apiPrefix + ".CONSUMER.MSG.NEXT.\(stream).\(consumer)" }

        /// The JSON of a pull request for `count` messages.
        static func request(forMessages count: Int, _ options: ConsumeOptions) -> [UInt8] {
            PullRequest(batch: count, expires: options.expires, maxBytes: options.maxBytes, noWait: false, heartbeat: options.heartbeat).json
        }

        /// Asks for what tops the owed messages up to the batch.
        private func pull(_ session: Session) async throws {
            let wanted = session.counters.withLock { counters -> Int in
                let wanted = options.batch - counters.owed
                if wanted > 0 { counters.owed += wanted }
                return wanted
            }
            guard wanted > 0 else { return }
            do {
                try await js.client.publish(Self.request(forMessages: wanted, options), to: pullSubject, replyTo: session.subscription.subject)
            } catch {
                throw JetStreamError.from(error, doing: "pulling from \(consumer)")
            }
        }

        /// A status message: a request ended (its owed messages are released), a heartbeat,
        /// or a refusal.
        private func handle(status: Int, _ message: NATSMessage, _ session: Session) async throws {
            let description = message.headers?.statusDescription ?? ""
            switch status {
            case 100:
                if let reply = message.replyTo { try? await js.client.publish([UInt8](), to: reply) }
            case 404, 408:
                // The request ended; the server says how many of its messages it no longer owes.
                let released = message.headers?["Nats-Pending-Messages"].flatMap(Int.init)
                session.counters.withLock { counters in counters.owed = released.map { Swift.max(0, counters.owed - $0) } ?? 0 }
                try await pull(session)
            case 409:
                if description.localizedCaseInsensitiveContains("Leadership Change")
                    || description.localizedCaseInsensitiveContains("Server Shutdown")
                {
                    // Every pending pull is void: ask again (a pull sent while reconnecting waits
                    // in the client's reconnect buffer).
                    session.counters.withLock { $0.owed = 0 }
                    try await pull(session)
                } else if description.localizedCaseInsensitiveContains("Batch Completed") {
                    let released = message.headers?["Nats-Pending-Messages"].flatMap(Int.init)
                    session.counters.withLock { counters in counters.owed = released.map { Swift.max(0, counters.owed - $0) } ?? 0 }
                    try await pull(session)
                } else if description.localizedCaseInsensitiveContains("Exceeded MaxWaiting") {
                    // Other pulls wait on the consumer; ours will be asked again when room comes.
                    session.counters.withLock { $0.owed = 0 }
                } else {
                    throw JetStreamError(.api, code: 409, message: "consuming \(consumer): 409 \(description)")
                }
            case 503:
                // No responders: the consumer has no leader for now (one is being elected after a
                // node was lost, or the server is restarting). Ask again after a pause that grows
                // while this lasts, as nats.go does, rather than ending the read.
                let pause = session.counters.withLock { counters -> Duration in
                    counters.owed = 0
                    counters.unavailableStreak += 1
                    return .milliseconds(Swift.min(5_000, 100 << Swift.min(counters.unavailableStreak, 6)))
                }
                do { try await Task.sleep(for: pause) } catch { throw JetStreamError(.cancelled, message: "consuming \(consumer) was cancelled") }
                try await pull(session)
            default:
                throw JetStreamError(.api, code: status, message: "consuming \(consumer): \(status) \(description)")
            }
        }
    }
}

extension JetStreamContext {
    /// A pull consumer's messages as they come, pulls kept topped up (ADR-37).
    public func messages(consumer: String, stream: String, options: ConsumeOptions = ConsumeOptions()) -> PullConsumerMessages {
        PullConsumerMessages(js: self, stream: stream, consumer: consumer, options: options)
    }
}
