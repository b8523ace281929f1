import Synchronization
import Transport

/// The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as PostgreSQL
/// runs it: a pure state machine fed the server's messages; the nonce is injected for tests.
struct SCRAMClient: Sendable {
    /// How the client binds the exchange to the TLS channel (RFC 5802 §6, RFC 5929).
    enum ChannelBinding: Sendable, Equatable {
        /// The client cannot bind (no TLS): gs2 header `n,,`.
        case unsupported
        /// The client could bind but the server offered no -PLUS mechanism: gs2 header `y,,`.
        case supportedButNotUsed
        /// tls-server-end-point with this certificate hash: gs2 header `p=tls-server-end-point,,`.
        case tlsServerEndPoint([UInt8])
    }

    enum State: Sendable {
        case initial
        case sentClientFirst
        case sentClientFinal(serverSignature: [UInt8])
        case done
    }

    private(set) var state = State.initial
    private let password: [UInt8]
    private let nonce: String
    private let binding: ChannelBinding
    private let clientFirstBare: String
    /// The largest iteration count accepted from a server, so a hostile one cannot stall the client.
    static let maximumIterations = 10_000_000

    /// `password` is SASLprep-ed here (or used raw when SASLprep rejects it, as PostgreSQL does).
    init(password: String, binding: ChannelBinding, nonce: String = SCRAMClient.makeNonce(), username: String = "") {
        self.password = Array((SASLprep.prepare(password) ?? password).utf8)
        self.nonce = nonce
        self.binding = binding
        self.clientFirstBare = "n=\(username),r=\(nonce)"
    }

    /// The mechanism name this exchange uses.
    var mechanism: String {
        if case .tlsServerEndPoint = binding { return "SCRAM-SHA-256-PLUS" }
        return "SCRAM-SHA-256"
    }

    private var gs2Header: String {
        switch binding {
        case .unsupported: "n,,"
        case .supportedButNotUsed: "y,,"
        case .tlsServerEndPoint: "p=tls-server-end-point,,"
        }
    }

    /// 24 random bytes in Base64, as printable and comma-free as RFC 5802 asks.
    static func makeNonce() -> String { Base64.encode(Crypto.randomBytes(count: 24)) }

    /// The client-first-message.
    mutating func clientFirstMessage() -> [UInt8] {
        state = .sentClientFirst
        return Array((gs2Header + clientFirstBare).utf8)
    }

    /// Takes the server-first-message and returns the client-final-message.
    mutating func receiveServerFirst(_ message: [UInt8]) throws(SCRAMError) -> [UInt8] {
        guard case .sentClientFirst = state else { throw SCRAMError("server-first-message out of order") }
        let serverFirst = String(decoding: message, as: UTF8.self)
        let attributes = try Self.attributes(serverFirst)
        guard let serverNonce = attributes["r"], serverNonce.hasPrefix(nonce), serverNonce.count > nonce.count else {
            throw SCRAMError("server nonce does not extend the client's")
        }
        guard let saltText = attributes["s"], let salt = Base64.decode(saltText), !salt.isEmpty else {
            throw SCRAMError("missing or malformed salt")
        }
        guard let iterationText = attributes["i"], let iterations = Int(iterationText), iterations >= 1 else {
            throw SCRAMError("missing or malformed iteration count")
        }
        guard iterations <= Self.maximumIterations else {
            throw SCRAMError("iteration count \(iterations) is above the client's limit of \(Self.maximumIterations)")
        }
        if attributes["m"] != nil { throw SCRAMError("server requires an unsupported SCRAM extension") }

        var bindingData = Array(gs2Header.utf8)
        if case .tlsServerEndPoint(let hash) = binding { bindingData += hash }
        let finalWithoutProof = "c=\(Base64.encode(bindingData)),r=\(serverNonce)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(finalWithoutProof)".utf8)

        guard let salted = Self.saltedPassword(password, salt: salt, iterations: iterations) else {
            throw SCRAMError("key derivation failed")
        }
        let clientKey = Crypto.hmacSHA256(key: salted, message: Array("Client Key".utf8))
        let storedKey = Crypto.sha256(clientKey)
        let clientSignature = Crypto.hmacSHA256(key: storedKey, message: authMessage)
        let proof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let serverKey = Crypto.hmacSHA256(key: salted, message: Array("Server Key".utf8))
        state = .sentClientFinal(serverSignature: Crypto.hmacSHA256(key: serverKey, message: authMessage))
        return Array("\(finalWithoutProof),p=\(Base64.encode(proof))".utf8)
    }

    /// Checks the server-final-message: the server must prove it knows the verifier.
    mutating func receiveServerFinal(_ message: [UInt8]) throws(SCRAMError) {
        guard case .sentClientFinal(let expected) = state else { throw SCRAMError("server-final-message out of order") }
        let attributes = try Self.attributes(String(decoding: message, as: UTF8.self))
        if let error = attributes["e"] { throw SCRAMError("server refused the proof: \(error)") }
        guard let signatureText = attributes["v"], let signature = Base64.decode(signatureText) else {
            throw SCRAMError("server-final-message has no verifier")
        }
        guard Crypto.constantTimeEquals(signature, expected) else {
            throw SCRAMError("server signature does not match: the server does not know the password's verifier")
        }
        state = .done
    }

    /// Whether the server's signature has been verified.
    var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// The derived keys of recent logins. The server keeps a role's salt and iteration count until
    /// its password changes, so a pool opening many sessions derives the key once (RFC 5802
    /// §5.1 allows clients to keep it). Keyed by the password's SHA-256, never the password.
    private static let saltedPasswords = Mutex<[SaltedKey: [UInt8]]>([:])

    private struct SaltedKey: Hashable {
        let passwordDigest: [UInt8]
        let salt: [UInt8]
        let iterations: Int
    }

    private static func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8]? {
        let key = SaltedKey(passwordDigest: Crypto.sha256(password), salt: salt, iterations: iterations)
        if let cached = saltedPasswords.withLock({ $0[key] }) { return cached }
        guard let derived = Crypto.pbkdf2SHA256(password: password, salt: salt, iterations: iterations) else { return nil }
        saltedPasswords.withLock { cache in
            if cache.count >= 64 { cache.removeAll() }
            cache[key] = derived
        }
        return derived
    }

    /// `a=value,b=value` attributes; the first occurrence of each wins.
    private static func attributes(_ message: String) throws(SCRAMError) -> [Character: String] {
        var result: [Character: String] = [:]
        for part in message.split(separator: ",", omittingEmptySubsequences: false) {
            guard part.count >= 2, let name = part.first, part.dropFirst().first == "=" else {
                throw SCRAMError("malformed attribute in \"\(message.prefix(200))\"")
            }
            if result[name] == nil { result[name] = String(part.dropFirst(2)) }
        }
        return result
    }
}

/// A SCRAM exchange that cannot go on: what the server sent was wrong, or it failed to prove itself.
struct SCRAMError: Error, Sendable, Equatable, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { "SCRAM: \(message)" }
}
