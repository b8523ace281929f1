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
