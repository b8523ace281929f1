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
        var info: NATSServerInfo
        do {
            info = try NATSServerInfo(json: json)
        } catch {
            // The JSON was the server's: the error names it.
            var named = error
            named.server = server.redacted
            throw named
        }
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
                    payload.sig = Base64.encodeURLSafe(signature, padded: false)
                } catch {
                    throw NATSError(.authorization, "the server's nonce could not be signed: \(error.message)", server: server.redacted)
                }
            }
        }
        return payload
    }

    /// Makes a confirmed connection the client's link, then starts its reader and writer.
    private func install(
        _ connection: Connection, server: NATSServerAddress, info: NATSServerInfo, reconnecting: Bool, buffer: ByteBuffer,
        parser: NATSParser
    ) throws(NATSError) {
        let (link, discovered) = try state.withLock { state throws(NATSError) -> (Link, [String]) in
            // Each auto-unsubscribing subscription is restored with the count it has left.
            var remaining: [UInt64: Int] = [:]
            for (sid, subscription) in state.subscriptions {
                if let left = subscription.remaining { remaining[sid] = left }
            }
            var generator = SystemRandomNumberGenerator()
            let (generation, discovered) = try state.machine.connectionEstablished(
                to: server, info: info, reconnecting: reconnecting, now: Deadline.now.uptimeNanoseconds, remaining: remaining,
                using: &generator)
            let link = Link(connection: connection, generation: generation, server: server)
            state.link = link
            return (link, discovered)
        }
        if !discovered.isEmpty { report(.serversDiscovered(discovered)) }
        startReading(link, buffer: buffer, parser: parser)
        Task { await self.writeLoop(link) }
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
}
