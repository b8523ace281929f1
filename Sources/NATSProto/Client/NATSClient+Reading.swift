import Transport

extension NATSClient {
    // MARK: - Reading

    /// Parses what connection `link` sends and routes it, until the connection breaks.
    func readLoop(_ link: Link, buffer initial: ByteBuffer, parser initialParser: NATSParser) async {
        var buffer = initial
        var parser = initialParser
        var reader = ReaderState()
        var failure: NATSError
        while true {
            do throws(NATSError) {
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
                // Consumers are woken once per read, not once per message.
                for consumer in reader.consumersToWake { consumer.resume() }
                reader.consumersToWake.removeAll(keepingCapacity: true)
                do {
                    _ = try await link.connection.read(into: &buffer, maximumBytes: 64 << 10)
                } catch {
                    if let reported = reader.serverError { throw reported }
                    throw Self.connectionError(error, link.server, doing: "reading")
                }
            } catch {
                failure = error
                break
            }
        }
        for consumer in reader.consumersToWake { consumer.resume() }
        linkFailed(link, failure)
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

    private func handle(_ operation: NATSServerOperation, _ link: Link, _ reader: inout ReaderState) throws(NATSError) {
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
        let outcome = subscription.deliver(message)
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
