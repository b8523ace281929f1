import Logging
import Transport

extension NATSClient {
    // MARK: - Handshake

    /// Opens a connection to `server`, authenticates, and installs it as the client's link:
    /// INFO, TLS if wanted, CONNECT and a PING whose PONG confirms the credentials; then every
    /// subscription is re-sent ahead of what was buffered, and the reader and writer start.
    func establish(_ server: NATSServerAddress, reconnecting: Bool) async throws(NATSError) {
        do {
            try await handshake(server, reconnecting: reconnecting)
        } catch {
            logger.warning("could not connect", metadata: ["nats.server": "\(server.redacted)", "error": "\(error)"])
            throw error
        }
    }

    private func handshake(_ server: NATSServerAddress, reconnecting: Bool) async throws(NATSError) {
        logger.debug("connecting", metadata: ["nats.server": "\(server.redacted)"])
        let deadline = Deadline.after(options.connectTimeout)
        let connection: Connection
        do {
            connection = try await Connection.connect(
                to: .tcp(host: server.host, port: server.port), options: ConnectOptions(timeout: options.connectTimeout))
        } catch {
            throw Self.connectionError(error, server, doing: "connecting")
        }
        var installed = false
        defer { if !installed { connection.close() } }

        let wantsTLS = server.tlsRequired || options.requireTLS || options.tls != nil
        if options.tlsHandshakeFirst {
            try await startTLS(connection, server, deadline)
        }
        var buffer = ByteBuffer(capacity: 64 << 10)
        var parser = NATSParser()
        guard case .info(let json) = try await readOperation(connection, &buffer, &parser, server, deadline) else {
            throw NATSError(.protocolViolation, "the server's first operation is not INFO", server: server.redacted)
        }
        var info = try NATSServerInfo(json: json)
        if !options.tlsHandshakeFirst, wantsTLS || info.tlsRequired {
            guard info.tlsRequired || info.tlsAvailable else {
                throw NATSError(.tls, "TLS is required but the server does not offer it", server: server.redacted)
            }
            guard buffer.isEmpty else {
                throw NATSError(.protocolViolation, "the server sent bytes after INFO before the TLS handshake", server: server.redacted)
            }
            try await startTLS(connection, server, deadline)
        }
        parser.maximumPayload = info.maximumPayload + (64 << 10)

        var hello = ByteBuffer(capacity: 512)
        NATSClientOperation.connect(json: try connectPayload(server, info, tls: connection.isTLS).json(), into: &hello)
        NATSClientOperation.ping(into: &hello)
        do {
            try await connection.write(hello, deadline: deadline)
        } catch {
            throw Self.connectionError(error, server, doing: "sending CONNECT")
        }
        handshake: while true {
            switch try await readOperation(connection, &buffer, &parser, server, deadline) {
            case .pong: break handshake
            case .ok: continue
            case .ping:
                var pong = ByteBuffer(capacity: 8)
                NATSClientOperation.pong(into: &pong)
                do { try await connection.write(pong, deadline: deadline) } catch { throw Self.connectionError(error, server, doing: "answering PING") }
            case .info(let json):
                info = try NATSServerInfo(json: json)
            case .error(let text):
                throw Self.serverError(text, server)
            case .message:
                throw NATSError(.protocolViolation, "a message arrived before the connection was confirmed", server: server.redacted)
            }
        }
        try install(connection, server: server, info: info, reconnecting: reconnecting, buffer: buffer, parser: parser)
        installed = true
        logger.info(
            "connected",
            metadata: [
                "nats.server": "\(server.redacted)", "tls": "\(connection.isTLS)", "authentication": "\(authenticationMethod(server))",
                "server_version": "\(info.version)", "jetstream": "\(info.jetStream)",
            ])
    }

    /// How this client proves who it is to `server`, for the logs.
    private func authenticationMethod(_ server: NATSServerAddress) -> String {
        if authentication.jwt != nil { return "credentials file (JWT)" }
        if authentication.nkey != nil { return "NKey" }
        if server.password != nil || options.user != nil { return "user and password" }
        if server.token != nil || options.token != nil { return "token" }
        return "none"
    }

    private func startTLS(_ connection: Connection, _ server: NATSServerAddress, _ deadline: Deadline) async throws(NATSError) {
        let context: TLSContext
        do {
            context = try tlsContext.withLock { cached in
                if let cached { return cached }
                let made = try TLSContext(configuration: options.tls ?? TLSConfiguration())
                cached = made
                return made
            }
        } catch {
            throw NATSError(.tls, "the TLS settings cannot be loaded: \(error)", server: server.redacted)
        }
        do {
            try await connection.startTLS(context, serverName: server.host, deadline: deadline)
        } catch {
            throw Self.connectionError(error, server, doing: "the TLS handshake")
        }
    }

    private func readOperation(
        _ connection: Connection, _ buffer: inout ByteBuffer, _ parser: inout NATSParser, _ server: NATSServerAddress, _ deadline: Deadline
    ) async throws(NATSError) -> NATSServerOperation {
        while true {
            do throws(NATSProtocolError) {
                if let operation = try parser.next(&buffer) { return operation }
            } catch {
                throw NATSError(.protocolViolation, error.description, server: server.redacted)
            }
            do {
                _ = try await connection.read(into: &buffer, deadline: deadline)
            } catch {
                throw Self.connectionError(error, server, doing: "the handshake")
            }
        }
    }

    private func connectPayload(_ server: NATSServerAddress, _ info: NATSServerInfo, tls: Bool) throws(NATSError) -> NATSConnectPayload {
        var payload = NATSConnectPayload(tlsRequired: tls, name: options.name, echo: options.echo)
        payload.headers = info.headers
        payload.noResponders = info.headers
        if let password = server.password {
            payload.user = server.user
            payload.pass = password
        } else if let token = server.token {
            payload.authToken = token
        } else if let user = options.user {
            payload.user = user
            payload.pass = options.password
        } else if let token = options.token {
            payload.authToken = token
        }
        if let key = authentication.nkey {
            if let jwt = authentication.jwt { payload.jwt = jwt } else { payload.nkey = key.publicKey }
            if let nonce = info.nonce {
                do throws(NKeyError) {
                    let signature = try key.sign(Array(nonce.utf8))
                    payload.sig = Self.base64URL(signature)
                } catch {
                    throw NATSError(.authorization, "the server's nonce could not be signed: \(error.message)", server: server.redacted)
                }
            }
        }
        return payload
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        String(
            Base64.encode(bytes).compactMap { character -> Character? in
                switch character {
                case "+": "-"
                case "/": "_"
                case "=": nil
                default: character
                }
            })
    }

    /// Makes a confirmed connection the client's link.
    private func install(
        _ connection: Connection, server: NATSServerAddress, info: NATSServerInfo, reconnecting: Bool, buffer: ByteBuffer,
        parser: NATSParser
    ) throws(NATSError) {
        let (link, discovered) = try state.withLock { state throws(NATSError) -> (Link, [String]) in
            try state.checkOpen()
            state.generation += 1
            let link = Link(connection: connection, generation: state.generation, server: server)
            state.link = link
            state.phase = .connected
            state.info = info
            state.pingsOutstanding = 0
            if reconnecting { state.statistics.reconnects += 1 }
            // Subscriptions first, so replies to buffered requests find their inbox.
            var replay = ByteBuffer(capacity: 256 + state.outgoing.pending.readableBytes)
            for subscription in state.subscriptions.values.sorted(by: { $0.sid < $1.sid }) {
                NATSClientOperation.writeSubscribe(
                    subject: subscription.subject, queue: subscription.queue, sid: subscription.sid, into: &replay)
                if let remaining = subscription.remaining {
                    NATSClientOperation.unsubscribe(sid: subscription.sid, after: remaining, into: &replay)
                }
            }
            if let mux = state.muxSID {
                NATSClientOperation.writeSubscribe(subject: inboxPrefix + "*", queue: nil, sid: mux, into: &replay)
            }
            if !replay.isEmpty {
                replay.writeBuffer(state.outgoing.pending)
                state.outgoing.pending = replay
            }
            state.pool.connected(server, at: Deadline.now.uptimeNanoseconds)
            return (link, addDiscovered(info, from: server, &state))
        }
        if !discovered.isEmpty { report(.serversDiscovered(discovered)) }
        Task { await self.readLoop(link, buffer: buffer, parser: parser) }
        Task { await self.writeLoop(link) }
    }

    /// Adds the servers of INFO `connect_urls` that the pool lacks; returns them.
    private func addDiscovered(_ info: NATSServerInfo, from server: NATSServerAddress, _ state: inout State) -> [String] {
        guard options.useDiscoveredServers else { return [] }
        var generator = SystemRandomNumberGenerator()
        return state.pool.add(advertised: info.connectURLs, from: server, shuffle: options.randomizeServers, using: &generator)
    }

    // MARK: - Errors

    static func connectionError(_ error: any Error, _ server: NATSServerAddress, doing activity: String) -> NATSError {
        if let error = error as? NATSError { return error }
        if let error = error as? TransportError {
            let kind: NATSError.Kind
            switch error.kind {
            case .tlsCertificateUntrusted, .tlsHostnameMismatch, .tlsConfiguration, .tlsFailure: kind = .tls
            case .timedOut: kind = .timedOut
            case .cancelled: kind = .cancelled
            default: kind = .connection
            }
            return NATSError(kind, "\(activity) failed: \(error.message)", server: server.redacted)
        }
        if error is CancellationError { return NATSError(.cancelled, "\(activity) was cancelled", server: server.redacted) }
        return NATSError(.connection, "\(activity) failed: \(error)", server: server.redacted)
    }

    /// The error for a `-ERR` line.
    static func serverError(_ text: String, _ server: NATSServerAddress) -> NATSError {
        let lower = text.lowercased()
        let kind: NATSError.Kind
        if lower.contains("authorization") || lower.contains("authentication") {
            kind = .authorization
        } else if lower.contains("tls") {
            kind = .tls
        } else {
            kind = .server
        }
        return NATSError(kind, "the server said: \(text)", server: server.redacted)
    }

    // MARK: - Reading

    private func readLoop(_ link: Link, buffer initial: ByteBuffer, parser initialParser: NATSParser) async {
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
                    state.withLock { state in
                        state.statistics.inMessages &+= messages
                        state.statistics.inBytes &+= bytes
                    }
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
            let writer = state.withLock { state -> UnsafeContinuation<Bool, Never>? in
                NATSClientOperation.pong(into: &state.outgoing.pending)
                return state.takeParkedWriter()
            }
            writer?.resume(returning: true)
        case .pong:
            let waiter = state.withLock { state -> (UInt64, UnsafeContinuation<Result<Void, NATSError>, Never>?, ReactorTimer?)? in
                state.pingsOutstanding = 0
                guard case .flush(let id)? = state.popPong() else { return nil }
                return (id, state.flushWaiters.removeValue(forKey: id), state.flushTimers.removeValue(forKey: id))
            }
            waiter?.2?.cancel()
            waiter?.1?.resume(returning: .success(()))
        case .ok:
            break
        case .info(let json):
            let info = try NATSServerInfo(json: json)
            let discovered = state.withLock { state -> [String] in
                state.info = info
                return addDiscovered(info, from: link.server, &state)
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
            let (found, mux) = state.withLock { ($0.subscriptions[sid], $0.muxSID) }
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

    // MARK: - Writing

    private func writeLoop(_ link: Link) async {
        var written: ByteBuffer?
        // The written buffer is handed back by move: a second reference would make the next
        // append copy it.
        while let batch = await nextBatch(link, giveBack: written.take()) {
            do {
                try await link.connection.write(batch)
            } catch {
                linkFailed(link, Self.connectionError(error, link.server, doing: "writing"))
                return
            }
            written = batch
        }
    }

    /// The next bytes to write for `link`, parking the writer while there are none; nil once
    /// the link is no longer current.
    private func nextBatch(_ link: Link, giveBack: consuming ByteBuffer?) async -> ByteBuffer? {
        var returned = giveBack
        // Having written a batch, the writer holds the turn; it gives it up before looking again.
        var holdsTurn = returned != nil
        while true {
            let (batch, waiters, exit) = state.withLock { state -> (ByteBuffer?, [UnsafeContinuation<Void, Never>], Bool) in
                if holdsTurn, state.link === link { state.writerBusy = false }
                holdsTurn = false
                if let written = returned.take() { state.outgoing.recycle(written) }
                guard state.phase == .connected, state.link === link else { return (nil, [], true) }
                // Nothing to write, or a caller is writing inline (it wakes the writer after).
                guard !state.outgoing.pending.isEmpty, !state.writerBusy else { return (nil, [], false) }
                let batch = state.takeBatch()
                let waiters = state.capacityWaiters
                state.capacityWaiters.removeAll()
                return (batch, waiters, false)
            }
            for waiter in waiters { waiter.resume() }
            if let batch { return batch }
            if exit { return nil }
            let goOn = await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    guard state.phase == .connected, state.link === link else { return false }
                    if !state.outgoing.pending.isEmpty, !state.writerBusy { return true }
                    state.writerParked = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
            if !goOn { return nil }
        }
    }

    // MARK: - Losing and regaining the connection

    /// Reacts to a broken link once: fails what cannot survive it, reports it, and reconnects
    /// (or closes the client).
    func linkFailed(_ link: Link, _ error: NATSError) {
        let work = state.withLock { state -> LinkFailure? in
            guard state.phase == .connected, state.link === link else { return nil }
            var work = LinkFailure()
            state.phase = .reconnecting
            state.link = nil
            // PINGs already written will get no PONG; those still queued will, after reconnecting.
            let written = state.pendingPongCount - state.queuedPings
            for _ in 0..<max(0, written) {
                guard case .flush(let id)? = state.popPong() else { continue }
                if let waiter = state.flushWaiters.removeValue(forKey: id) { work.flushes.append(waiter) }
                if let timer = state.flushTimers.removeValue(forKey: id) { work.timers.append(timer) }
            }
            state.pingsOutstanding = 0
            work.writer = state.writerParked
            state.writerParked = nil
            state.writerBusy = false
            work.capacityWaiters = state.capacityWaiters
            state.capacityWaiters.removeAll()
            state.pool.lost(link.server)
            return work
        }
        guard let work else { return }
        link.connection.close()
        work.writer?.resume(returning: false)
        for waiter in work.capacityWaiters { waiter.resume() }
        for timer in work.timers { timer.cancel() }
        let lost = NATSError(.connection, "the connection was lost before the server answered the PING", server: link.server.redacted)
        for waiter in work.flushes { waiter.resume(returning: .failure(lost)) }
        report(.disconnected(server: link.server.redacted, reason: error))
        if options.allowReconnect {
            Task { await self.reconnect(after: error) }
        } else {
            shutDown(reason: error)
        }
    }

    struct LinkFailure {
        var writer: UnsafeContinuation<Bool, Never>?
        var capacityWaiters: [UnsafeContinuation<Void, Never>] = []
        var flushes: [UnsafeContinuation<Result<Void, NATSError>, Never>] = []
        var timers: [ReactorTimer] = []
    }

    /// ADR-40: servers in pool order, the lost one last; a server is tried no sooner than
    /// reconnectWait (plus jitter) after its previous attempt; one that failed more than
    /// maximumReconnectAttempts times in a row leaves the pool; an empty pool closes the client.
    private func reconnect(after cause: NATSError) async {
        var lastError = cause
        while true {
            let now = Deadline.now.uptimeNanoseconds
            enum Choice {
                case stop
                case poolEmpty
                case attempt(NATSServerAddress, notBefore: UInt64)
            }
            let choice = state.withLock { state -> Choice in
                guard state.phase == .reconnecting else { return .stop }
                let next = state.pool.next(now: now, wait: options.reconnectWait.saturatingNanoseconds) { server in
                    let jitter = (server.tlsRequired || options.requireTLS ? options.reconnectJitterTLS : options.reconnectJitter).saturatingNanoseconds
                    return jitter > 0 ? UInt64.random(in: 0...jitter) : 0
                }
                guard let next else { return .poolEmpty }
                return .attempt(next.server, notBefore: next.notBefore)
            }
            let server: NATSServerAddress
            let notBefore: UInt64
            switch choice {
            case .stop:
                return
            case .poolEmpty:
                shutDown(reason: NATSError(.connection, "every server failed to reconnect; last: \(lastError.message)", server: lastError.server))
                return
            case .attempt(let chosen, let earliest):
                server = chosen
                notBefore = earliest
            }
            if notBefore > now { try? await Task.sleep(for: .nanoseconds(Int64(clamping: notBefore - now))) }
            let stillReconnecting = state.withLock { state -> Bool in
                guard state.phase == .reconnecting else { return false }
                state.pool.attempted(server, at: Deadline.now.uptimeNanoseconds)
                return true
            }
            guard stillReconnecting else { return }
            do throws(NATSError) {
                try await establish(server, reconnecting: true)
                report(.reconnected(server: server.redacted))
                return
            } catch {
                lastError = error
                _ = state.withLock { $0.pool.failed(server) }
            }
        }
    }

    // MARK: - Keep-alive

    /// PINGs the server every pingInterval; a connection with maximumPingsOutstanding PINGs
    /// unanswered is treated as lost.
    func startPinger() {
        let interval = options.pingInterval
        let task = Task { [self] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                let outcome = state.withLock { state -> (stale: Link?, writer: UnsafeContinuation<Bool, Never>?) in
                    guard state.phase == .connected, let link = state.link else { return (nil, nil) }
                    if state.pingsOutstanding >= options.maximumPingsOutstanding { return (link, nil) }
                    state.pingsOutstanding += 1
                    NATSClientOperation.ping(into: &state.outgoing.pending)
                    state.queuedPings += 1
                    state.pongs.append(.keepalive)
                    return (nil, state.takeParkedWriter())
                }
                if let link = outcome.stale {
                    linkFailed(
                        link,
                        NATSError(
                            .connection, "stale connection: \(options.maximumPingsOutstanding) PINGs went unanswered",
                            server: link.server.redacted))
                }
                outcome.writer?.resume(returning: true)
            }
        }
        state.withLock { $0.pinger = task }
    }
}
