import Transport

extension NATSClient {
    // MARK: - Reading

    /// Starts reading what connection `link` sends (beginning with what `buffer` holds), and
    /// routing it, until the connection breaks. A plain connection is read on the reactor's
    /// thread (``InputReader``), so a message reaches its consumer with one task wake-up; a TLS
    /// connection by a task of its own.
    func startReading(_ link: Link, buffer: ByteBuffer, parser: NATSParser) {
        if link.connection.isTLS {
            Task { await self.readLoop(link, buffer: buffer, parser: parser) }
        } else {
            let reader = InputReader(client: self, link: link, buffer: buffer, parser: parser)
            state.withLock { if $0.link === link { $0.inputReader = reader } }
            reader.start()
        }
    }

    /// Reads and routes a connection's input from a task of its own, until the connection breaks.
    func readLoop(_ link: Link, buffer initial: ByteBuffer, parser initialParser: NATSParser) async {
        var buffer = initial
        var parser = initialParser
        var reader = ReaderState()
        var failure: NATSError
        while true {
            do throws(NATSError) {
                try process(&buffer, &parser, link, &reader)
                do {
                    _ = try await link.connection.read(into: &buffer, maximumBytes: Self.readSize)
                } catch {
                    throw readFailure(error, link, reader)
                }
            } catch {
                failure = error
                break
            }
        }
        for consumer in reader.consumersToWake { consumer.resume() }
        linkFailed(link, failure)
    }

    /// The most one read takes from the socket.
    static let readSize = 64 << 10

    /// Parses and routes every complete operation in `buffer`, then wakes the consumers that
    /// got messages: once per read, not once per message.
    func process(_ buffer: inout ByteBuffer, _ parser: inout NATSParser, _ link: Link, _ reader: inout ReaderState) throws(NATSError) {
        while true {
            let operation: NATSServerOperation?
            do throws(NATSProtocolError) {
                operation = try parser.next(&buffer)
            } catch {
                throw NATSError(.protocolViolation, error.description, server: link.server.redacted)
            }
            guard let operation else { break }
            try handle(operation, link, &reader)
        }
        if reader.inMessages > 0 {
            let (messages, bytes) = (reader.inMessages, reader.inBytes)
            reader.inMessages = 0
            reader.inBytes = 0
            state.withLock { $0.machine.received(messages: messages, bytes: bytes) }
        }
        for consumer in reader.consumersToWake { consumer.resume() }
        reader.consumersToWake.removeAll(keepingCapacity: true)
    }

    /// What a failed read means: the `-ERR` the server sent before closing, if any, or the
    /// transport's error.
    func readFailure(_ error: any Error, _ link: Link, _ reader: ReaderState) -> NATSError {
        if let reported = reader.serverError { return reported }
        return Self.connectionError(error, link.server, doing: "reading")
    }

    struct ReaderState {
        var cachedSID: UInt64 = 0
        var cachedSubscription: NATSSubscription?
        var muxSID: UInt64?
        var inMessages = 0
        var inBytes = 0
        /// A `-ERR` the server sent before closing the connection: the reason given for the loss.
        var serverError: NATSError?
        /// Subscriptions' consumers that got messages during this read.
        var consumersToWake: [UnsafeContinuation<Void, Never>] = []
    }

    fileprivate func handle(_ operation: NATSServerOperation, _ link: Link, _ reader: inout ReaderState) throws(NATSError) {
        switch operation {
        case .message(let message):
            reader.inMessages &+= 1
            reader.inBytes &+= message.payload.readableBytes
            try route(message, link, &reader)
        case .ping:
            let work = state.withLock { $0.work(for: $0.machine.pingReceived()) }
            // The machine only wakes the writer for a PONG; it never asks for an inline write.
            if case .wake(let writer) = work { writer.resume(returning: true) }
        case .pong:
            let waiter = state.withLock { state -> (UnsafeContinuation<Result<Void, NATSError>, Never>?, ReactorTimer?)? in
                guard let id = state.machine.pongReceived() else { return nil }
                return (state.flushWaiters.removeValue(forKey: id), state.flushTimers.removeValue(forKey: id))
            }
            waiter?.1?.cancel()
            waiter?.0?.resume(returning: .success(()))
        case .ok:
            break
        case .info(let json):
            let info: NATSServerInfo
            do {
                info = try NATSServerInfo(json: json)
            } catch {
                var named = error
                named.server = link.server.redacted
                throw named
            }
            let discovered = state.withLock { state -> [String] in
                var generator = SystemRandomNumberGenerator()
                return state.machine.infoReceived(info, using: &generator)
            }
            if !discovered.isEmpty { report(.serversDiscovered(discovered)) }
            if info.lameDuckMode { report(.lameDuck(server: link.server.redacted)) }
        case .error(let text):
            let error = Self.serverError(text, link.server)
            let lower = text.lowercased()
            if lower.contains("stale connection") {
                throw NATSError(.connection, "the server found the connection stale", server: link.server.redacted)
            }
            report(.serverError(error))
            // Permission violations leave the connection open; other errors are followed by a close.
            if !lower.contains("permissions violation") { reader.serverError = error }
        }
    }

    private func route(_ inbound: NATSInboundMessage, _ link: Link, _ reader: inout ReaderState) throws(NATSError) {
        let sid = inbound.subscriptionID
        if sid == reader.muxSID {
            try routeReply(inbound, link)
            return
        }
        let subscription: NATSSubscription
        if sid == reader.cachedSID, let cached = reader.cachedSubscription {
            subscription = cached
        } else {
            let (found, mux) = state.withLock { ($0.subscriptions[sid], $0.machine.muxSID) }
            reader.muxSID = mux
            if sid == mux {
                try routeReply(inbound, link)
                return
            }
            guard let found else { return }
            reader.cachedSID = sid
            reader.cachedSubscription = found
            subscription = found
        }
        let message = NATSMessage(
            subject: inbound.subjectString, replyTo: inbound.replyToString, headers: try headers(of: inbound, link),
            payload: inbound.payload)
        let outcome = subscription.deliver(consume message)
        if let consumer = outcome.consumer { reader.consumersToWake.append(consumer) }
        if outcome.becameSlow {
            report(.slowConsumer(subject: subscription.subject, sid: sid, dropped: subscription.droppedCount))
        }
        if outcome.reachedMaximum {
            removeSubscription(subscription, sendUnsubscribe: false)
            reader.cachedSubscription = nil
            reader.cachedSID = 0
        }
    }

    private func headers(of inbound: NATSInboundMessage, _ link: Link) throws(NATSError) -> NATSHeaders? {
        guard let block = inbound.headerBlock else { return nil }
        do throws(NATSProtocolError) {
            return try NATSHeaders(parsing: block)
        } catch {
            throw NATSError(.protocolViolation, "a message on \"\(inbound.subjectString)\": \(error.message)", server: link.server.redacted)
        }
    }

    /// A message on the request inbox: its token (the last subject token) names the request.
    private func routeReply(_ inbound: NATSInboundMessage, _ link: Link) throws(NATSError) {
        let prefixLength = inboxPrefix.utf8.count
        var token: UInt64 = 0
        var digits = 0
        for byte in inbound.subject.readableBytesView.dropFirst(prefixLength) {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 19 else { return }
            token = token * 10 + UInt64(byte - UInt8(ascii: "0"))
            digits += 1
        }
        guard digits > 0 else { return }
        let headers = try headers(of: inbound, link)
        if headers?.status == 503, inbound.payload.readableBytes == 0 {
            finishRequest(token, .failure(NATSError(.noResponders, "no responders are subscribed to the request's subject", server: link.server.redacted)))
            return
        }
        let message = NATSMessage(subject: inbound.subjectString, replyTo: inbound.replyToString, headers: headers, payload: inbound.payload)
        finishRequest(token, .success(message))
    }
}

/// Reads a plain connection on the reactor's thread: the reactor calls it when input arrives,
/// it reads what is there, routes it (replies to their requests, messages to their
/// subscriptions' buffers) and waits again, so a message's consumer is the one task woken.
/// Routing never blocks or suspends: it takes short locks and resumes continuations.
final class InputReader: @unchecked Sendable {
    // Safe: the mutable members are used by one owner at a time. The first is `start()`,
    // before the handler is stored. After that, ownership passes only through the handler:
    // the connection stores it for exactly one call and takes it back under its
    // registration's lock, either to call it (the reactor) or for a requester that reads in
    // its place (`takeOver()`, then `readForReply`, which ends in `drain()` and so stores it
    // again). So each owner's use happens after the previous owner stored the handler. The one
    // other way is the reactor timer a `drain()` arms instead of storing the handler, while
    // nobody can take it over.
    private let client: NATSClient
    private let link: NATSClient.Link
    private var buffer: ByteBuffer
    private var parser: NATSParser
    private var reader = NATSClient.ReaderState()
    /// The handler stored with the connection; it holds this reader, so it is dropped when
    /// reading ends, which ends the cycle.
    private var handler: (@Sendable (TransportError?) -> Void)?

    /// Reads per turn before the reactor's other sockets are served (each up to
    /// ``NATSClient/readSize``): a fast stream of messages cannot hold the reactor's thread.
    static let readsPerTurn = 1

    init(client: NATSClient, link: NATSClient.Link, buffer: ByteBuffer, parser: NATSParser) {
        self.client = client
        self.link = link
        self.buffer = buffer
        self.parser = parser
    }

    func start() {
        handler = { [self] error in
            if let error { fail(client.readFailure(error, link, reader)) } else { drain() }
        }
        drain()
    }

    /// Routes what is buffered, then reads until the socket is empty and the handler is
    /// stored, or until the turn's reads are spent (then a timer of the reactor goes on).
    private func drain() {
        guard let handler else { return }
        let connection = link.connection
        var reads = 0
        do throws(NATSError) {
            while true {
                try client.process(&buffer, &parser, link, &reader)
                do {
                    // Stored only after a read that emptied the socket or came back short.
                    if try connection.whenReadable(handler) { return }
                    if reads == Self.readsPerTurn {
                        _ = connection.reactor.schedule(at: .now) { [self] in drain() }
                        return
                    }
                    _ = try connection.receiveAvailable(into: &buffer, maximumBytes: NATSClient.readSize)
                    reads += 1
                } catch {
                    throw client.readFailure(error, link, reader)
                }
            }
        } catch {
            fail(error)
        }
    }

    /// Takes the reader over from the reactor, when it is parked waiting for input: true when
    /// the caller now reads in its place (and must end with ``readForReply(until:deadline:)``).
    func takeOver() -> Bool {
        link.connection.takeReadHandler()
    }

    /// For a requester that took the reader over: reads on the calling thread (the transport's
    /// inline wait) and routes what comes, until `finished` says the reply is in (checked
    /// first: the reactor may have routed it just before the take-over), nothing came within
    /// the wait, or a few reads went to other messages; then hands the reader back.
    func readForReply(until finished: () -> Bool, deadline: Deadline) {
        let connection = link.connection
        for _ in 0..<Self.readsForAReply {
            if finished() { break }
            let received: Int
            do {
                received = try connection.readNow(into: &buffer, maximumBytes: NATSClient.readSize, deadline: deadline, waitingInline: true)
            } catch {
                fail(client.readFailure(error, link, reader))
                return
            }
            if received == 0 { break }
            do throws(NATSError) {
                try client.process(&buffer, &parser, link, &reader)
            } catch {
                fail(error)
                return
            }
        }
        drain()
    }

    /// Reads a requester makes on its own thread before it gives up and waits as usual.
    static let readsForAReply = 4

    private func fail(_ error: NATSError) {
        handler = nil
        for consumer in reader.consumersToWake { consumer.resume() }
        reader.consumersToWake.removeAll()
        client.linkFailed(link, error)
    }
}
