import Logging
import Synchronization
import Transport

extension PostgresConnection {
    /// Connects to the first of the configured hosts that accepts and has the session
    /// attributes `target_session_attrs` asks for (in a random order with
    /// `load_balance_hosts=random`), negotiates TLS as `sslMode` asks, and authenticates. A host
    /// that is not of the kind asked for is left (its connection closed) for the next, as libpq
    /// does; `prefer-standby` takes any host when none is a standby.
    public static func connect(_ configuration: PostgresConfiguration) async throws(PostgresError) -> PostgresConnection {
        var failures: [String] = []
        var last: PostgresError?
        var hosts = configuration.hosts
        if configuration.loadBalanceHosts == .random { hosts.shuffle() }
        let passes: [PostgresConfiguration.TargetSessionAttributes] =
            configuration.targetSessionAttributes == .preferStandby ? [.standby, .any] : [configuration.targetSessionAttributes]
        for target in passes {
            for host in hosts {
                var logger = configuration.logger
                logger[metadataKey: "postgres.endpoint"] = "\(host)"
                logger[metadataKey: "postgres.connection"] = "\(connectionIDs.add(1, ordering: .relaxed).newValue)"
                logger.debug("connecting", metadata: ["sslmode": "\(configuration.sslMode.rawValue)"])
                let connection: PostgresConnection
                do {
                    connection = try await connect(to: host, configuration, logger)
                } catch {
                    logger.warning("could not connect", metadata: ["error": "\(error)"])
                    // An authentication refusal is the answer; other hosts would refuse the same way.
                    if error.kind == .authentication || error.kind == .usage { throw error }
                    failures.append("\(host): \(error)")
                    last = error
                    continue
                }
                do {
                    if let mismatch = try await connection.mismatch(target) {
                        logger.info("the server is not of the kind asked for; trying the next host", metadata: ["reason": "\(mismatch)"])
                        connection.close()
                        failures.append("\(host): \(mismatch)")
                        last = PostgresError(.connection, message: "\(host): \(mismatch)")
                        continue
                    }
                } catch {
                    connection.close()
                    failures.append("\(host): \(error)")
                    last = error
                    continue
                }
                return connection
            }
        }
        guard var error = last else { throw PostgresError(.usage, message: "no host to connect to") }
        if failures.count > 1 { error.message = "could not connect to any host: " + failures.joined(separator: "; ") }
        if configuration.targetSessionAttributes != .any {
            error.message += " (target_session_attrs=\(configuration.targetSessionAttributes.rawValue))"
        }
        throw error
    }

    /// Why this session does not have the attributes `target` asks for, or nil when it does.
    /// From PostgreSQL 14 on, the server reports `in_hot_standby` and
    /// `default_transaction_read_only` at startup; older servers are asked (libpq's rule).
    func mismatch(_ target: PostgresConfiguration.TargetSessionAttributes) async throws(PostgresError) -> String? {
        switch target {
        case .any, .preferStandby:
            return nil
        case .readWrite, .readOnly:
            let readOnly: Bool
            if let standby = parameter("in_hot_standby"), let defaultReadOnly = parameter("default_transaction_read_only") {
                readOnly = standby == "on" || defaultReadOnly == "on"
            } else {
                readOnly = try await firstValue(of: "SHOW transaction_read_only") == "on"
            }
            if target == .readWrite, readOnly { return "session is read-only" }
            if target == .readOnly, !readOnly { return "session is not read-only" }
            return nil
        case .primary, .standby:
            let inRecovery: Bool
            if let standby = parameter("in_hot_standby") {
                inRecovery = standby == "on"
            } else {
                inRecovery = try await firstValue(of: "SELECT pg_catalog.pg_is_in_recovery()") == "t"
            }
            if target == .primary, inRecovery { return "server is in hot standby mode" }
            if target == .standby, !inRecovery { return "server is not in hot standby mode" }
            return nil
        }
    }

    /// The first column of the first row of a simple query, as text.
    private func firstValue(of sql: String) async throws(PostgresError) -> String? {
        let results = try await simpleQuery(sql)
        do {
            return try results.first?.rows.first?.decode(String.self, column: 0)
        } catch {
            throw PostgresError(.protocolViolation, message: "\(sql): \(error)")
        }
    }

    private static func connect(to host: PostgresConfiguration.Host, _ configuration: PostgresConfiguration, _ logger: Logger)
        async throws(PostgresError) -> PostgresConnection
    {
        let mode = configuration.sslMode
        // libpq does not use TLS over Unix sockets, whatever the sslmode.
        if host.isUnixSocket || mode == .disable {
            return try await attempt(host, configuration, logger, tls: .off)
        }
        switch mode {
        case .allow:
            do {
                return try await attempt(host, configuration, logger, tls: .off)
            } catch where error.kind == .authentication || error.kind == .server {
                return try await attempt(host, configuration, logger, tls: .required)
            }
        case .prefer:
            do {
                return try await attempt(host, configuration, logger, tls: .preferred)
            } catch where error.kind == .tls {
                return try await attempt(host, configuration, logger, tls: .off)
            }
        default:
            return try await attempt(host, configuration, logger, tls: .required)
        }
    }

    private enum TLSUse {
        case off, preferred, required
    }

    private static func attempt(_ host: PostgresConfiguration.Host, _ configuration: PostgresConfiguration, _ logger: Logger, tls: TLSUse)
        async throws(PostgresError) -> PostgresConnection
    {
        let deadline = Deadline.after(configuration.connectTimeout)
        let transport: Connection
        do {
            transport = try await Connection.connect(to: host.endpoint, options: ConnectOptions(timeout: configuration.connectTimeout, inlineReadWait: configuration.inlineReadWait))
        } catch {
            throw PostgresError(error.isTimeout ? .timedOut : .connection, message: "could not connect to \(host): \(error)")
        }
        do throws(PostgresError) {
            var buffer = ByteBuffer(capacity: 8192)
            if tls != .off {
                try await negotiateTLS(transport, host, configuration, required: tls == .required, buffer: &buffer, deadline: deadline)
            }
            var machine = ConnectionStateMachine(
                user: configuration.user, password: configuration.password, channelBinding: configuration.channelBinding,
                serverEndPoint: transport.tlsServerEndPoint, scramNonce: configuration.scramNonceForTesting,
                minimumProtocol: configuration.minimumProtocolVersion, requestedProtocol: configuration.maximumProtocolVersion,
                sentProtocolOptions: configuration.runtimeParameters.map(\.name).filter { $0.hasPrefix("_pq_.") })
            var out = ByteBuffer()
            var parameters: [(name: String, value: String)] = [("user", configuration.user), ("database", configuration.effectiveDatabase)]
            if let name = configuration.applicationName { parameters.append(("application_name", name)) }
            if let options = configuration.options { parameters.append(("options", options)) }
            parameters.append(("client_encoding", "UTF8"))
            parameters += configuration.runtimeParameters
            do {
                try FrontendMessage.startup(version: configuration.maximumProtocolVersion.code, parameters: parameters, into: &out)
            } catch {
                throw PostgresError(.usage, message: "cannot send the startup message: \(error)")
            }
            try await write(transport, out, deadline)
            var decoder = BackendMessageDecoder(maximumMessageSize: min(configuration.maximumMessageSize, 1 << 20))
            var notices: [PostgresDiagnostics] = []
            startup: while true {
                let decoded: BackendMessage?
                do throws(PostgresProtocolError) {
                    decoded = try decoder.decode(&buffer)
                } catch {
                    throw PostgresError(.protocolViolation, message: error.description)
                }
                guard let message = decoded else {
                    _ = try await read(transport, &buffer, deadline)
                    continue
                }
                switch machine.received(message) {
                case .none, .deliver, .complete, .notification:
                    continue
                case .notice(let diagnostics):
                    notices.append(diagnostics)
                case .write(let response):
                    try await write(transport, response, deadline)
                case .ready:
                    break startup
                case .fail(let error):
                    throw error
                }
            }
            decoder.maximumMessageSize = configuration.maximumMessageSize
            let connection = PostgresConnection(
                transport: transport, machine: machine, reader: ReaderState(decoder: decoder, buffer: buffer), host: host,
                configuration: configuration, logger: logger)
            logger.info(
                "connected",
                metadata: [
                    "tls": "\(transport.isTLS)", "authentication": "\(machine.authenticationMethod ?? "none")",
                    "protocol": "\(machine.protocolVersion)",
                    "server_version": "\(machine.parameters["server_version"] ?? "?")",
                    "backend_pid": "\(machine.backendKey.map { String($0.processID) } ?? "?")",
                ])
            for notice in notices { connection.noticeContinuation.yield(notice) }
            return connection
        } catch {
            transport.close()
            throw error
        }
    }

    /// SSLRequest (or direct TLS), then the handshake with the verification the sslmode asks for.
    private static func negotiateTLS(
        _ transport: Connection, _ host: PostgresConfiguration.Host, _ configuration: PostgresConfiguration, required: Bool,
        buffer: inout ByteBuffer, deadline: Deadline
    ) async throws(PostgresError) {
        let context = try tlsContext(configuration)
        if configuration.sslNegotiation == .postgres {
            var request = ByteBuffer()
            FrontendMessage.sslRequest(into: &request)
            try await write(transport, request, deadline)
            while buffer.readableBytes == 0 { _ = try await read(transport, &buffer, deadline) }
            let answer = buffer.readInteger(as: UInt8.self)
            switch answer {
            case UInt8(ascii: "S"):
                // Bytes after 'S' were sent before encryption: a man in the middle could have
                // injected them (CVE-2021-23222). Refuse them.
                guard buffer.readableBytes == 0 else {
                    throw PostgresError(.protocolViolation, message: "the server sent unencrypted data after accepting TLS")
                }
            case UInt8(ascii: "N"):
                if required {
                    throw PostgresError(.tls, message: "the server does not support TLS, and sslmode=\(configuration.sslMode.rawValue) requires it")
                }
                return
            case UInt8(ascii: "E"):
                throw PostgresError(.tls, message: "the server answered the TLS request with an error (a server older than 7.0?)")
            default:
                throw PostgresError(.protocolViolation, message: "unexpected answer 0x\(String(answer ?? 0, radix: 16)) to the TLS request")
            }
        }
        do {
            try await transport.startTLS(context, serverName: host.host, deadline: deadline)
        } catch {
            throw PostgresError(error.isTimeout ? .timedOut : .tls, message: "TLS handshake with \(host) failed: \(error)")
        }
        // A direct TLS connection is PostgreSQL's only if the server chose ALPN `postgresql`
        // (libpq refuses it otherwise: without it, the TLS could terminate at some other service).
        if configuration.sslNegotiation == .direct, transport.negotiatedApplicationProtocol != "postgresql" {
            throw PostgresError(
                .tls, message: "the server at \(host) accepted direct TLS without choosing the ALPN protocol \"postgresql\"")
        }
    }

    private static let tlsContexts = Mutex<[String: TLSContext]>([:])

    /// A TLS context for the configuration's mode, root certificate and client certificate,
    /// shared between connections that use the same ones.
    private static func tlsContext(_ configuration: PostgresConfiguration) throws(PostgresError) -> TLSContext {
        let root = configuration.sslRootCertificate
        let verification: TLSConfiguration.Verification
        switch configuration.sslMode {
        case .verifyFull: verification = .full
        case .verifyCA: verification = .chainOnly
        // libpq: with a root certificate file given, sslmode=require verifies the chain like verify-ca.
        case .require where root != nil && root != "system": verification = .chainOnly
        default: verification = .none
        }
        let trust: TLSConfiguration.TrustRoots = root.map { $0 == "system" ? .system : .file($0) } ?? .system
        let protocols = configuration.sslNegotiation == .direct ? ["postgresql"] : []
        let key = "\(verification)|\(trust)|\(configuration.sslClientCertificate.map { "\($0)" } ?? "")|\(protocols)"
        if let cached = tlsContexts.withLock({ $0[key] }) { return cached }
        do {
            let context = try TLSContext(
                configuration: TLSConfiguration(
                    trustRoots: trust, verification: verification, clientCertificate: configuration.sslClientCertificate,
                    applicationProtocols: protocols))
            tlsContexts.withLock { $0[key] = context }
            return context
        } catch {
            throw PostgresError(.tls, message: "cannot set up TLS: \(error)")
        }
    }

    private static func write(_ transport: Connection, _ bytes: ByteBuffer, _ deadline: Deadline) async throws(PostgresError) {
        do {
            try await transport.write(bytes, deadline: deadline)
        } catch {
            throw PostgresError(error.isTimeout ? .timedOut : .connection, message: "could not send to the server: \(error)")
        }
    }

    private static func read(_ transport: Connection, _ buffer: inout ByteBuffer, _ deadline: Deadline) async throws(PostgresError) -> Int {
        do {
            return try await transport.read(into: &buffer, deadline: deadline)
        } catch {
            throw PostgresError(
                error.isTimeout ? .timedOut : .connection,
                message: error.isEndOfStream ? "the server closed the connection during startup" : "startup failed: \(error)")
        }
    }
}

extension Error {
    var isTimeout: Bool { (self as? TransportError)?.kind == .timedOut }
    var isEndOfStream: Bool { (self as? TransportError)?.kind == .endOfStream }
}
