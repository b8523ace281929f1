import Transport

/// The protocol logic of one connection, with no I/O and no clock: it takes decoded backend
/// messages and returns what the driver must do. Requests are identified by ids; the driver keeps
/// the callers.
///
/// After startup, every request the driver writes ends with a Sync (extended protocol) or is a
/// simple Query, so each is answered by exactly one ReadyForQuery; requests are therefore matched
/// to responses by order, and an error affects only the request whose Sync it precedes.
@usableFromInline
struct ConnectionStateMachine: Sendable {
    /// What the server told about one request.
    @usableFromInline
    enum Event: Sendable, Equatable {
        case parseComplete
        case bindComplete
        case closeComplete
        case parameterDescription([UInt32])
        case rowDescription(RowDescription)
        case noData
        case row(DataRow)
        case commandComplete(String)
        case emptyQuery
        case portalSuspended
        case error(PostgresDiagnostics)
        case copyIn(CopyResponse)
        case copyOut(CopyResponse)
        case copyData(ByteBuffer)
        case copyDone
    }

    enum Action: Sendable, Equatable {
        /// Nothing to do.
        case none
        /// Send these bytes (an authentication response).
        case write(ByteBuffer)
        /// Startup finished: the session is ready for queries.
        case ready
        /// Deliver an event to request `id`.
        case deliver(UInt64, Event)
        /// Request `id` is complete (its ReadyForQuery arrived).
        case complete(UInt64)
        /// An asynchronous notice.
        case notice(PostgresDiagnostics)
        /// A LISTEN notification.
        case notification(PostgresNotification)
        /// The connection must close with this error (failing every request).
        case fail(PostgresError)
    }

    private enum Phase: Sendable {
        case authenticating(AuthenticationPhase)
        /// Authenticated; waiting for BackendKeyData, ParameterStatus and the first ReadyForQuery.
        case settingUp
        case ready
        case failed
    }

    private enum AuthenticationPhase: Sendable {
        case started
        case scram(SCRAMClient)
        case scramVerified
    }

    private var phase: Phase = .authenticating(.started)
    private var requests: [UInt64] = []
    private var head = 0

    /// The run-time parameters the server reported (server_version, TimeZone …).
    private(set) var parameters: [String: String] = [:]
    /// The key a CancelRequest must quote.
    private(set) var backendKey: BackendKeyData?
    /// The transaction status of the last ReadyForQuery.
    private(set) var transactionStatus: TransactionStatus = .idle
    /// The server's protocol negotiation answer, if it sent one.
    private(set) var negotiatedProtocol: NegotiateProtocolVersion?
    /// How the server authenticated the session: trust, password, md5, SCRAM-SHA-256(-PLUS).
    private(set) var authenticationMethod: String?
    /// Session state statements left behind (read from their command tags), for a reset.
    var sessionChanges: PostgresSessionChanges = []

    private let user: String
    private let password: String?
    private let channelBinding: PostgresConfiguration.ChannelBinding
    /// The TLS certificate hash for tls-server-end-point, when on TLS.
    private let serverEndPoint: [UInt8]?
    private let scramNonce: String?

    /// The oldest protocol version the session may fall back to.
    private let minimumProtocol: PostgresConfiguration.ProtocolVersion
    /// The version asked for at startup.
    private let requestedProtocol: PostgresConfiguration.ProtocolVersion
    /// The `_pq_.` protocol options the startup message carried.
    private let sentProtocolOptions: [String]
    /// The version the session speaks: the one asked for, or the server's if it negotiated down.
    private(set) var protocolVersion: PostgresConfiguration.ProtocolVersion

    init(
        user: String, password: String?, channelBinding: PostgresConfiguration.ChannelBinding, serverEndPoint: [UInt8]?,
        scramNonce: String? = nil, minimumProtocol: PostgresConfiguration.ProtocolVersion = .v3_0,
        requestedProtocol: PostgresConfiguration.ProtocolVersion = .v3_0, sentProtocolOptions: [String] = []
    ) {
        self.minimumProtocol = minimumProtocol
        self.sentProtocolOptions = sentProtocolOptions
        self.requestedProtocol = requestedProtocol
        self.protocolVersion = requestedProtocol
        self.user = user
        self.password = password
        self.channelBinding = channelBinding
        self.serverEndPoint = serverEndPoint
        self.scramNonce = scramNonce
    }

    /// The request the next response belongs to.
    var currentRequest: UInt64? { head < requests.count ? requests[head] : nil }

    /// Records that request `id`'s messages were written (in this order relative to others).
    mutating func enqueue(_ id: UInt64) {
        requests.append(id)
    }

    /// Takes one message from the server.
    mutating func received(_ message: BackendMessage) -> Action {
        switch phase {
        case .authenticating(let authentication):
            return receivedDuringAuthentication(message, authentication)
        case .settingUp:
            return receivedDuringSetup(message)
        case .ready:
            return receivedWhenReady(message)
        case .failed:
            return .none
        }
    }

    /// The connection failed: no request will be answered.
    mutating func failAll() {
        phase = .failed
        requests.removeAll()
        head = 0
    }

    // MARK: - Startup

    /// The server answered the startup with NegotiateProtocolVersion: it speaks an older minor
    /// version (the session goes on in it unless it is older than the minimum), and/or it did not
    /// know some of the `_pq_.` options sent (the session goes on without them). Accepted once.
    private mutating func negotiated(_ negotiation: NegotiateProtocolVersion) -> Action {
        guard negotiatedProtocol == nil else { return failProtocol("a second NegotiateProtocolVersion") }
        negotiatedProtocol = negotiation
        if let option = negotiation.unrecognizedOptions.first(where: { !sentProtocolOptions.contains($0) }) {
            return failProtocol("NegotiateProtocolVersion names the option \"\(SafeText.escaped(option))\", which was not sent")
        }
        let offered = PostgresConfiguration.ProtocolVersion(major: 3, minor: Int(negotiation.newestMinorVersion))
        guard offered < requestedProtocol || (offered == requestedProtocol && !negotiation.unrecognizedOptions.isEmpty) else {
            return failProtocol("NegotiateProtocolVersion offers \(offered), not older than the \(requestedProtocol) asked for")
        }
        guard offered.minor != 1 else { return failProtocol("NegotiateProtocolVersion offers 3.1, which is not a protocol version") }
        guard offered >= minimumProtocol else {
            phase = .failed
            return .fail(
                PostgresError(
                    .connection,
                    message: "the server speaks protocol \(offered) at most, but min_protocol_version is \(minimumProtocol)"))
        }
        protocolVersion = offered
        return .none
    }

    private mutating func receivedDuringAuthentication(_ message: BackendMessage, _ state: AuthenticationPhase) -> Action {
        switch message {
        case .authentication(let request):
            return authenticationRequested(request, state)
        case .errorResponse(let diagnostics):
            phase = .failed
            let kind: PostgresError.Kind = diagnostics.sqlState.errorClass == "28" ? .authentication : .server
            return .fail(PostgresError(kind, message: diagnostics.message, diagnostics: diagnostics))
        case .negotiateProtocolVersion(let negotiation):
            return negotiated(negotiation)
        case .noticeResponse(let diagnostics):
            return .notice(diagnostics)
        default:
            return failProtocol("\(message.name) during authentication")
        }
    }

    private mutating func authenticationRequested(_ request: AuthenticationRequest, _ state: AuthenticationPhase) -> Action {
        switch (request, state) {
        case (.ok, .started):
            if channelBinding == .require {
                return failAuthentication("channel_binding=require, but the server authenticated the connection without SCRAM-SHA-256-PLUS")
            }
            if authenticationMethod == nil { authenticationMethod = "trust" }
            phase = .settingUp
            return .none
        case (.ok, .scramVerified):
            phase = .settingUp
            return .none
        case (.ok, .scram):
            return failAuthentication("the server accepted the login before proving it knows the password (SCRAM was not completed)")
        case (.cleartextPassword, .started), (.md5Password, .started):
            if channelBinding == .require {
                return failAuthentication("channel_binding=require, but the server asked for a \(request.methodName) password")
            }
            guard let password else {
                return failAuthentication("the server asked for a password, and none was configured")
            }
            authenticationMethod = request.methodName
            var out = ByteBuffer()
            do {
                if case .md5Password(let salt) = request {
                    let inner = Crypto.hex(Crypto.md5(Array(password.utf8) + Array(user.utf8)))
                    try FrontendMessage.password("md5" + Crypto.hex(Crypto.md5(Array(inner.utf8) + salt)), into: &out)
                } else {
                    try FrontendMessage.password(password, into: &out)
                }
            } catch {
                return failAuthentication("the password cannot be sent: \(error)")
            }
            return .write(out)
        case (.sasl(let mechanisms), .started):
            guard let password else {
                return failAuthentication("the server asked for a password (SCRAM), and none was configured")
            }
            let offersPlus = mechanisms.contains("SCRAM-SHA-256-PLUS")
            let binding: SCRAMClient.ChannelBinding
            switch (channelBinding, serverEndPoint) {
            case (.disable, _):
                binding = .unsupported
            case (_, let hash?) where offersPlus:
                binding = .tlsServerEndPoint(hash)
            case (.require, _):
                return failAuthentication(
                    serverEndPoint == nil
                        ? "channel_binding=require needs TLS, and the connection is not encrypted"
                        : "channel_binding=require, but the server does not offer SCRAM-SHA-256-PLUS")
            case (.prefer, let hash):
                binding = hash == nil ? .unsupported : .supportedButNotUsed
            }
            var scram = scramNonce.map { SCRAMClient(password: password, binding: binding, nonce: $0) }
                ?? SCRAMClient(password: password, binding: binding)
            guard mechanisms.contains(scram.mechanism) else {
                if offersPlus, serverEndPoint == nil {
                    return failAuthentication(
                        "the server offered SCRAM-SHA-256-PLUS authentication over a connection without TLS: channel binding needs TLS (use sslmode=require or stronger)"
                    )
                }
                return failAuthentication("the server offers \(mechanisms.joined(separator: ", ")); this client speaks SCRAM-SHA-256 and SCRAM-SHA-256-PLUS")
            }
            var out = ByteBuffer()
            do {
                try FrontendMessage.saslInitialResponse(mechanism: scram.mechanism, data: scram.clientFirstMessage(), into: &out)
            } catch {
                return failAuthentication("cannot start SCRAM: \(error)")
            }
            authenticationMethod = scram.mechanism
            phase = .authenticating(.scram(scram))
            return .write(out)
        case (.saslContinue(let data), .scram(var scram)):
            do {
                let response = try scram.receiveServerFirst(Array(data.readableBytesView))
                var out = ByteBuffer()
                FrontendMessage.saslResponse(response, into: &out)
                phase = .authenticating(.scram(scram))
                return .write(out)
            } catch {
                return failAuthentication(error.description)
            }
        case (.saslFinal(let data), .scram(var scram)):
            do {
                try scram.receiveServerFinal(Array(data.readableBytesView))
                phase = .authenticating(.scramVerified)
                return .none
            } catch {
                return failAuthentication(error.description)
            }
        case (.kerberosV5, .started), (.gss, .started), (.sspi, .started):
            return failAuthentication("the server asks for \(request.methodName) authentication, which this client does not support")
        default:
            return failProtocol("authentication request \(request.methodName) out of order")
        }
    }

    private mutating func receivedDuringSetup(_ message: BackendMessage) -> Action {
        switch message {
        case .parameterStatus(let name, let value):
            parameters[name] = value
            return .none
        case .backendKeyData(let key):
            // 3.0's key is 4 bytes; 3.2 allows 4 to 256 (the decoder checks those bounds).
            if protocolVersion < .v3_2, key.secretKey.count != 4 {
                return failProtocol("BackendKeyData with a \(key.secretKey.count)-byte key in protocol \(protocolVersion) (4 expected)")
            }
            backendKey = key
            return .none
        case .readyForQuery(let status):
            transactionStatus = status
            phase = .ready
            return .ready
        case .noticeResponse(let diagnostics):
            return .notice(diagnostics)
        case .negotiateProtocolVersion(let negotiation):
            return negotiated(negotiation)
        case .errorResponse(let diagnostics):
            phase = .failed
            return .fail(.server(diagnostics))
        default:
            return failProtocol("\(message.name) before the session was ready")
        }
    }

    // MARK: - Ready

    private mutating func receivedWhenReady(_ message: BackendMessage) -> Action {
        // Asynchronous messages may come at any time.
        switch message {
        case .noticeResponse(let diagnostics): return .notice(diagnostics)
        case .notificationResponse(let notification): return .notification(notification)
        case .parameterStatus(let name, let value):
            parameters[name] = value
            return .none
        default: break
        }
        guard head < requests.count else {
            if case .errorResponse(let diagnostics) = message {
                // A FATAL error with nothing pending: the server is closing the session (shutdown,
                // idle_session_timeout, pg_terminate_backend).
                phase = .failed
                return .fail(PostgresError(.connection, message: "the server closed the session: \(diagnostics.message)", diagnostics: diagnostics))
            }
            return failProtocol("\(message.name) with no request pending")
        }
        let id = requests[head]
        if case .errorResponse(let diagnostics) = message, diagnostics.endsSession {
            // FATAL (pg_terminate_backend, shutdown): the server closes the session after it; its
            // reason is what every waiting caller gets.
            phase = .failed
            return .fail(PostgresError(.connection, message: "the server closed the session: \(diagnostics.message)", diagnostics: diagnostics))
        }
        switch message {
        case .readyForQuery(let status):
            transactionStatus = status
            head += 1
            if head > 64 && head * 2 > requests.count {
                requests.removeFirst(head)
                head = 0
            }
            return .complete(id)
        case .dataRow(let row): return .deliver(id, .row(row))
        case .commandComplete(let tag):
            sessionChanges.record(commandTag: tag)
            return .deliver(id, .commandComplete(tag))
        case .rowDescription(let description): return .deliver(id, .rowDescription(description))
        case .parseComplete: return .deliver(id, .parseComplete)
        case .bindComplete: return .deliver(id, .bindComplete)
        case .closeComplete: return .deliver(id, .closeComplete)
        case .noData: return .deliver(id, .noData)
        case .parameterDescription(let types): return .deliver(id, .parameterDescription(types))
        case .emptyQueryResponse: return .deliver(id, .emptyQuery)
        case .portalSuspended: return .deliver(id, .portalSuspended)
        case .errorResponse(let diagnostics): return .deliver(id, .error(diagnostics))
        case .copyInResponse(let response): return .deliver(id, .copyIn(response))
        case .copyOutResponse(let response): return .deliver(id, .copyOut(response))
        case .copyData(let data): return .deliver(id, .copyData(data))
        case .copyDone: return .deliver(id, .copyDone)
        case .copyBothResponse:
            return failProtocol("CopyBothResponse (replication) is not supported")
        case .authentication, .backendKeyData, .negotiateProtocolVersion:
            return failProtocol("\(message.name) after startup")
        case .noticeResponse, .notificationResponse, .parameterStatus:
            return .none  // handled above
        }
    }

    private mutating func failAuthentication(_ message: String) -> Action {
        phase = .failed
        return .fail(PostgresError(.authentication, message: message))
    }

    private mutating func failProtocol(_ message: String) -> Action {
        phase = .failed
        return .fail(PostgresError(.protocolViolation, message: "unexpected \(message)"))
    }
}

extension AuthenticationRequest {
    /// The method's name, for messages.
    var methodName: String {
        switch self {
        case .ok: "ok"
        case .kerberosV5: "Kerberos V5"
        case .cleartextPassword: "cleartext"
        case .md5Password: "MD5"
        case .gss, .gssContinue: "GSSAPI"
        case .sspi: "SSPI"
        case .sasl, .saslContinue, .saslFinal: "SASL"
        }
    }
}

extension BackendMessage {
    /// The message's name, for errors.
    var name: String {
        switch self {
        case .authentication: "Authentication"
        case .backendKeyData: "BackendKeyData"
        case .bindComplete: "BindComplete"
        case .closeComplete: "CloseComplete"
        case .commandComplete: "CommandComplete"
        case .copyData: "CopyData"
        case .copyDone: "CopyDone"
        case .copyInResponse: "CopyInResponse"
        case .copyOutResponse: "CopyOutResponse"
        case .copyBothResponse: "CopyBothResponse"
        case .dataRow: "DataRow"
        case .emptyQueryResponse: "EmptyQueryResponse"
        case .errorResponse: "ErrorResponse"
        case .negotiateProtocolVersion: "NegotiateProtocolVersion"
        case .noData: "NoData"
        case .noticeResponse: "NoticeResponse"
        case .notificationResponse: "NotificationResponse"
        case .parameterDescription: "ParameterDescription"
        case .parameterStatus: "ParameterStatus"
        case .parseComplete: "ParseComplete"
        case .portalSuspended: "PortalSuspended"
        case .readyForQuery: "ReadyForQuery"
        case .rowDescription: "RowDescription"
        }
    }
}
