import Transport

/// 'R': what the server asks for to authenticate, or that authentication succeeded.
public enum AuthenticationRequest: Sendable, Equatable {
    /// 0: authentication succeeded.
    case ok
    /// 2: Kerberos V5, which no current server sends.
    case kerberosV5
    /// 3: the password in clear text.
    case cleartextPassword
    /// 5: `md5(md5(password + user) + salt)`, hex, prefixed with `md5`.
    case md5Password(salt: [UInt8])
    /// 7: GSSAPI.
    case gss
    /// 8: more GSSAPI or SSPI data.
    case gssContinue(ByteBuffer)
    /// 9: SSPI.
    case sspi
    /// 10: SASL, with the mechanisms the server offers, in its order of preference.
    case sasl(mechanisms: [String])
    /// 11: a SASL challenge.
    case saslContinue(ByteBuffer)
    /// 12: the SASL outcome (SCRAM's server signature).
    case saslFinal(ByteBuffer)

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> AuthenticationRequest {
        let code = try body.readBody(Int32.self, "authentication code")
        switch code {
        case 0: return .ok
        case 2: return .kerberosV5
        case 3: return .cleartextPassword
        case 5:
            guard let salt = body.readBytes(count: 4) else { throw MalformedMessage("MD5 salt is shorter than 4 bytes") }
            return .md5Password(salt: salt)
        case 7: return .gss
        case 8: return .gssContinue(try body.readBodySlice(count: body.readableBytes, "GSS data"))
        case 9: return .sspi
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try body.readBodyCString("SASL mechanism")
                if name.isEmpty { break }
                guard mechanisms.count < 64 else { throw MalformedMessage("more than 64 SASL mechanisms") }
                mechanisms.append(name)
            }
            return .sasl(mechanisms: mechanisms)
        case 11: return .saslContinue(try body.readBodySlice(count: body.readableBytes, "SASL data"))
        case 12: return .saslFinal(try body.readBodySlice(count: body.readableBytes, "SASL data"))
        default: throw MalformedMessage("unknown authentication request \(code)")
        }
    }
}

/// 'K': the process id and secret key that a CancelRequest must quote.
public struct BackendKeyData: Sendable, Equatable {
    /// The backend's process id.
    public var processID: Int32
    /// The secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
    public var secretKey: [UInt8]

    /// Creates key data.
    public init(processID: Int32, secretKey: [UInt8]) {
        self.processID = processID
        self.secretKey = secretKey
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> BackendKeyData {
        let processID = try body.readBody(Int32.self, "process id")
        guard (4...256).contains(body.readableBytes), let key = body.readBytes(count: body.readableBytes) else {
            throw MalformedMessage("secret key of \(body.readableBytes) bytes; 4 to 256 expected")
        }
        return BackendKeyData(processID: processID, secretKey: key)
    }
}

/// 'v': the server speaks an older minor protocol version or ignored some startup options.
public struct NegotiateProtocolVersion: Sendable, Equatable {
    /// The newest minor version the server supports.
    public var newestMinorVersion: Int32
    /// The `_pq_.` options the server did not recognise.
    public var unrecognizedOptions: [String]

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> NegotiateProtocolVersion {
        // The server sends either the minor version or the whole version number (3 << 16 | minor).
        let minor = try body.readBody(Int32.self, "minor version") & 0xFFFF
        let count = try body.readBody(Int32.self, "option count")
        guard count >= 0, Int(count) <= body.readableBytes else { throw MalformedMessage("option count \(count) does not fit") }
        var options: [String] = []
        for _ in 0..<count { options.append(try body.readBodyCString("option name")) }
        return NegotiateProtocolVersion(newestMinorVersion: minor, unrecognizedOptions: options)
    }
}

/// 'A': a NOTIFY on a channel this session listens to.
public struct PostgresNotification: Sendable, Equatable {
    /// The notifying backend's process id.
    public var processID: Int32
    /// The channel name.
    public var channel: String
    /// The payload (empty when none was given).
    public var payload: String

    /// Creates a notification.
    public init(processID: Int32, channel: String, payload: String) {
        self.processID = processID
        self.channel = channel
        self.payload = payload
    }

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> PostgresNotification {
        let processID = try body.readBody(Int32.self, "process id")
        let channel = try body.readBodyCString("channel")
        return PostgresNotification(processID: processID, channel: channel, payload: try body.readBodyCString("payload"))
    }
}

/// 'G', 'H', 'W': a COPY started; the overall format and each column's.
public struct CopyResponse: Sendable, Equatable {
    /// Whether the copy is binary (otherwise text or CSV, row by row).
    public var isBinary: Bool
    /// Per column: true for binary.
    public var columnFormats: [Bool]

    static func decode(_ body: inout ByteBuffer) throws(MalformedMessage) -> CopyResponse {
        let overall = try body.readBody(Int8.self, "copy format")
        guard overall == 0 || overall == 1 else { throw MalformedMessage("copy format \(overall) is neither 0 nor 1") }
        let count = try body.readBodyCount("column count", minimumBytesEach: 2)
        var formats: [Bool] = []
        formats.reserveCapacity(count)
        for _ in 0..<count {
            let format = try body.readBody(Int16.self, "column format")
            guard format == 0 || format == 1 else { throw MalformedMessage("column format \(format) is neither 0 nor 1") }
            formats.append(format == 1)
        }
        return CopyResponse(isBinary: overall == 1, columnFormats: formats)
    }
}
