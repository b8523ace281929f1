import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// How a TLS client checks the server.
public struct TLSConfiguration: Sendable {
    /// Where trusted root certificates come from.
    public enum TrustRoots: Sendable, Hashable {
        /// The operating system's trust store.
        case system
        /// A PEM file of CA certificates.
        case file(String)
    }

    /// How much of the server's identity is verified.
    public enum Verification: Sendable, Hashable {
        /// Chain to a trusted root, and certificate valid for the server name (libpq's verify-full).
        case full
        /// Chain to a trusted root only (libpq's verify-ca).
        case chainOnly
        /// Encryption without authentication (libpq's require). Vulnerable to interception.
        case none
    }

    /// A client certificate and its private key, both PEM files.
    public struct ClientCertificate: Sendable, Hashable {
        /// Certificate chain file, leaf first.
        public var certificateChainFile: String
        /// Private key file.
        public var privateKeyFile: String

        /// Creates a client certificate reference.
        public init(certificateChainFile: String, privateKeyFile: String) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
        }
    }

    /// Trusted roots; the system store by default.
    public var trustRoots: TrustRoots
    /// Verification level; full by default.
    public var verification: Verification
    /// Optional client certificate.
    public var clientCertificate: ClientCertificate?
    /// ALPN protocol names to offer, most preferred first (PostgreSQL's direct TLS needs "postgresql").
    public var applicationProtocols: [String]

    /// Creates a configuration; the defaults verify the chain against the system store and the host name.
    public init(
        trustRoots: TrustRoots = .system, verification: Verification = .full,
        clientCertificate: ClientCertificate? = nil, applicationProtocols: [String] = []
    ) {
        self.trustRoots = trustRoots
        self.verification = verification
        self.clientCertificate = clientCertificate
        self.applicationProtocols = applicationProtocols
    }
}

/// A loaded TLS client configuration (an OpenSSL `SSL_CTX`), shared by many connections.
///
/// `@unchecked Sendable`: the `SSL_CTX` is fully configured in `init` and never changed after;
/// OpenSSL documents `SSL_new` on a shared, unchanging context as safe from any thread, and the
/// context's reference count is atomic.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    /// The configuration this context was made from.
    public let configuration: TLSConfiguration

    /// Loads `configuration`: trust roots, client certificate, protocol floor TLS 1.2.
    public init(configuration: TLSConfiguration = TLSConfiguration()) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TransportError(.tlsConfiguration, message: "could not create a TLS context: " + OpenSSLErrors.drain())
        }
        self.context = context
        self.configuration = configuration
        _ = copenssl_ctx_set_min_proto_version(context, copenssl_tls1_2_version())
        if configuration.verification != .none {
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        switch configuration.trustRoots {
        case .system:
            if SSL_CTX_set_default_verify_paths(context) != 1 {
                throw TransportError(.tlsConfiguration, message: "could not load the system trust store: " + OpenSSLErrors.drain())
            }
        case .file(let path):
            if SSL_CTX_load_verify_locations(context, path, nil) != 1 {
                throw TransportError(.tlsConfiguration, message: "could not load CA file \(path): " + OpenSSLErrors.drain())
            }
        }
        if let client = configuration.clientCertificate {
            if SSL_CTX_use_certificate_chain_file(context, client.certificateChainFile) != 1 {
                throw TransportError(
                    .tlsConfiguration,
                    message: "could not load client certificate \(client.certificateChainFile): " + OpenSSLErrors.drain())
            }
            if SSL_CTX_use_PrivateKey_file(context, client.privateKeyFile, SSL_FILETYPE_PEM) != 1 {
                throw TransportError(
                    .tlsConfiguration, message: "could not load client key \(client.privateKeyFile): " + OpenSSLErrors.drain())
            }
            if SSL_CTX_check_private_key(context) != 1 {
                throw TransportError(
                    .tlsConfiguration, message: "client key does not match its certificate: " + OpenSSLErrors.drain())
            }
        }
        if !configuration.applicationProtocols.isEmpty {
            var wire: [UInt8] = []
            for name in configuration.applicationProtocols {
                let bytes = Array(name.utf8)
                guard (1...255).contains(bytes.count) else {
                    throw TransportError(.tlsConfiguration, message: "ALPN protocol name must be 1 to 255 bytes")
                }
                wire.append(UInt8(bytes.count))
                wire.append(contentsOf: bytes)
            }
            // SSL_CTX_set_alpn_protos returns 0 on success.
            if SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) != 0 {
                throw TransportError(.tlsConfiguration, message: "could not set ALPN protocols: " + OpenSSLErrors.drain())
            }
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    func makeSession(serverName: String?, endpoint: Endpoint) throws -> TLSSession {
        if configuration.verification == .full && (serverName ?? "").isEmpty {
            throw TransportError(.tlsConfiguration, endpoint: endpoint, message: "host name verification needs a server name")
        }
        guard let ssl = SSL_new(context) else {
            throw TransportError(.tlsConfiguration, endpoint: endpoint, message: "SSL_new failed: " + OpenSSLErrors.drain())
        }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TransportError(.tlsConfiguration, endpoint: endpoint, message: "BIO_new failed")
        }
        copenssl_bio_set_mem_eof_return(readBIO, -1)
        copenssl_bio_set_mem_eof_return(writeBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO)
        SSL_set_connect_state(ssl)
        let session = TLSSession(ssl: ssl, readBIO: readBIO, writeBIO: writeBIO, serverName: serverName)
        if let serverName, !serverName.isEmpty {
            let isAddress = SocketAddress.isIPLiteral(serverName)
            if !isAddress {
                _ = copenssl_set_tlsext_host_name(ssl, serverName)
            }
            if configuration.verification == .full {
                let accepted: Int32
                if isAddress {
                    var literal = serverName
                    if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
                    accepted = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), literal)
                } else {
                    accepted = SSL_set1_host(ssl, serverName)
                }
                if accepted != 1 {
                    throw TransportError(.tlsConfiguration, endpoint: endpoint, message: "invalid server name \(serverName)")
                }
            }
        }
        return session
    }
}

enum TLSStep {
    case done
    case wantRead
    case failed(TransportError)
}

/// One TLS client session driven through memory BIOs: ciphertext moves between the BIOs and the
/// socket in our own code, so socket writes use MSG_NOSIGNAL and never block a thread.
///
/// `@unchecked Sendable`: a session is created by `TLSContext.makeSession`, stored at once in its
/// connection's `Mutex<TLSSession?>`, and every method is called only while that mutex is held, so
/// the `SSL` object is never used by two threads at the same time.
final class TLSSession: @unchecked Sendable {
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let writeBIO: OpaquePointer
    private let serverName: String?
    private var output = ByteBuffer()
    private(set) var serverEndPoint: [UInt8]?
    private(set) var negotiatedApplicationProtocol: String?

    init(ssl: OpaquePointer, readBIO: OpaquePointer, writeBIO: OpaquePointer, serverName: String?) {
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        self.serverName = serverName
    }

    deinit {
        SSL_free(ssl)  // frees both BIOs
    }

    var hasPendingOutput: Bool { !output.isEmpty || BIO_ctrl_pending(writeBIO) > 0 }

    func handshakeStep(endpoint: Endpoint) -> TLSStep {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        drainWriteBIO()
        if result == 1 {
            serverEndPoint = computeServerEndPoint()
            negotiatedApplicationProtocol = selectedProtocol()
            return .done
        }
        let code = SSL_get_error(ssl, result)
        if code == copenssl_ssl_error_want_read() { return .wantRead }
        return .failed(handshakeError(endpoint: endpoint))
    }

    private func handshakeError(endpoint: Endpoint) -> TransportError {
        let verify = SSL_get_verify_result(ssl)
        let details = OpenSSLErrors.drain()
        if verify != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verify))
            if verify == Int(X509_V_ERR_HOSTNAME_MISMATCH) || verify == Int(X509_V_ERR_IP_ADDRESS_MISMATCH) {
                return TransportError(
                    .tlsHostnameMismatch, endpoint: endpoint,
                    message: "TLS certificate verification failed: \(reason): the certificate is not valid for \(serverName ?? "the server")")
            }
            return TransportError(
                .tlsCertificateUntrusted, endpoint: endpoint,
                message: "TLS certificate verification failed: \(reason)")
        }
        return TransportError(.tlsFailure, endpoint: endpoint, message: "TLS handshake failed: \(details)")
    }

    /// Decrypts into `region`; returns the plaintext byte count and, when zero, what is needed.
    func read(into region: UnsafeMutableRawBufferPointer, limit: Int, endpoint: Endpoint) -> (count: Int, step: TLSStep) {
        ERR_clear_error()
        let wanted = Int32(clamping: Swift.min(region.count, limit))
        let result = SSL_read(ssl, region.baseAddress, wanted)
        drainWriteBIO()
        if result > 0 { return (Int(result), .done) }
        let code = SSL_get_error(ssl, result)
        if code == copenssl_ssl_error_want_read() { return (0, .wantRead) }
        if code == copenssl_ssl_error_zero_return() { return (0, .done) }
        return (0, .failed(TransportError(.tlsFailure, endpoint: endpoint, message: "TLS read failed: " + OpenSSLErrors.drain())))
    }

    /// Hands ciphertext received from the socket to OpenSSL.
    func feed(_ ciphertext: ByteBuffer, endpoint: Endpoint) throws {
        try ciphertext.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                guard let base = raw.baseAddress else { break }
                let written = BIO_write(readBIO, base + offset, Int32(clamping: raw.count - offset))
                if written <= 0 {
                    throw TransportError(.tlsFailure, endpoint: endpoint, message: "could not buffer TLS input")
                }
                offset += Int(written)
            }
        }
    }

    /// Encrypts `plaintext` into the pending output.
    func write(_ plaintext: ByteBuffer, endpoint: Endpoint) throws {
        try plaintext.withUnsafeReadableBytes { raw in
            var offset = 0
            while offset < raw.count {
                ERR_clear_error()
                guard let base = raw.baseAddress else { break }
                let written = SSL_write(ssl, base + offset, Int32(clamping: raw.count - offset))
                if written <= 0 {
                    throw TransportError(.tlsFailure, endpoint: endpoint, message: "TLS write failed: " + OpenSSLErrors.drain())
                }
                offset += Int(written)
                drainWriteBIO()
            }
        }
    }

    /// Queues a close_notify alert.
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        drainWriteBIO()
    }

    /// Takes the ciphertext waiting to be sent.
    func takeOutput() -> ByteBuffer {
        drainWriteBIO()
        let taken = output
        output = ByteBuffer()
        return taken
    }

    private func drainWriteBIO() {
        while true {
            let pending = Int(BIO_ctrl_pending(writeBIO))
            if pending == 0 { return }
            let bio = writeBIO
            let read = output.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { region in
                Int(Swift.max(0, BIO_read(bio, region.baseAddress, Int32(clamping: pending))))
            }
            if read == 0 { return }
        }
    }

    private func selectedProtocol() -> String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// RFC 5929 §4.1: hash the certificate with its signature's digest, SHA-256 for MD5 and SHA-1.
    private func computeServerEndPoint() -> [UInt8]? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        var digestID: Int32 = 0
        var keyID: Int32 = 0
        let signatureID = X509_get_signature_nid(certificate)
        var digest: OpaquePointer?
        if OBJ_find_sigid_algs(signatureID, &digestID, &keyID) == 1,
            digestID != NID_md5, digestID != NID_sha1, digestID != NID_undef,
            let name = OBJ_nid2sn(digestID)
        {
            digest = EVP_get_digestbyname(name)
        }
        var hash = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, digest ?? EVP_sha256(), &hash, &length) == 1 else { return nil }
        return Array(hash.prefix(Int(length)))
    }
}

/// Reads OpenSSL's thread-local error queue into one line.
enum OpenSSLErrors {
    static func drain() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            messages.append(String(nulTerminated: text))
        }
        return messages.isEmpty ? "no detail from OpenSSL" : messages.joined(separator: "; ")
    }
}
