import COpenSSL
import Foundation
import Synchronization
import TestSupport
import Transport

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made at test time with the openssl command: a CA, a server certificate for
/// localhost and 127.0.0.1 signed with SHA-384, a client certificate, and a second, unrelated CA.
struct TLSFixture: Sendable {
    let directory: URL
    var caFile: String { directory.appendingPathComponent("ca.pem").path }
    var otherCAFile: String { directory.appendingPathComponent("other-ca.pem").path }
    var serverCertificate: String { directory.appendingPathComponent("server.pem").path }
    var serverKey: String { directory.appendingPathComponent("server.key").path }
    var clientCertificate: String { directory.appendingPathComponent("client.pem").path }
    var clientKey: String { directory.appendingPathComponent("client.key").path }

    private static let made = Mutex<Task<TLSFixture, any Error>?>(nil)

    /// The fixture, made once for the whole test process.
    static func shared() async throws -> TLSFixture {
        let task = made.withLock { task in
            if let task { return task }
            let started = Task { try await make() }
            task = started
            return started
        }
        return try await task.value
    }

    static func make() async throws -> TLSFixture {
        let directory = try makeTemporaryDirectory("tls-fixture")
        let openssl = "/usr/bin/openssl"
        func run(_ arguments: [String]) async throws {
            _ = try await runCommand(openssl, arguments, directory: directory)
        }
        func key(_ name: String) async throws {
            try await run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name])
        }
        for name in ["ca", "other-ca"] {
            try await key("\(name).key")
            try await run(["req", "-x509", "-new", "-key", "\(name).key", "-out", "\(name).pem", "-days", "2",
                           "-subj", "/CN=Transport Test \(name)", "-sha256"])
        }
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
            .write(to: directory.appendingPathComponent("client.ext"), atomically: true, encoding: .utf8)
        for (name, digest) in [("server", "-sha384"), ("client", "-sha256")] {
            try await key("\(name).key")
            try await run(["req", "-new", "-key", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name == "server" ? "localhost" : "transport-client")"])
            try await run(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                           "-out", "\(name).pem", "-days", "2", digest, "-extfile", "\(name).ext"])
        }
        return TLSFixture(directory: directory)
    }

    /// The hash of the server certificate's DER form with `digest` ("sha256", "sha384"), via the openssl command.
    func serverCertificateHash(_ digest: String) async throws -> [UInt8] {
        let der = directory.appendingPathComponent("server-\(digest).der").path
        _ = try await runCommand("/usr/bin/openssl", ["x509", "-in", serverCertificate, "-outform", "DER", "-out", der])
        let output = try await runCommand("/usr/bin/openssl", ["dgst", "-\(digest)", "-hex", der]).text
        guard let hex = output.split(separator: "=").last?.trimmingCharacters(in: .whitespacesAndNewlines) else { return [] }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}

/// A blocking, thread-per-connection TLS echo server written directly against OpenSSL, so the
/// client is tested against an implementation that shares none of its code.
///
/// `@unchecked Sendable`: the `SSL_CTX` is configured in `init` and only read afterwards (OpenSSL
/// allows `SSL_new` from any thread on an unchanging context); the descriptor is an integer.
final class TLSEchoServer: @unchecked Sendable {
    let port: Int
    private let listenDescriptor: Int32
    private let context: OpaquePointer
    private let expectsStartTLSLine: Bool
    private let serverNames = Mutex<[String?]>([])

    /// The SNI host name each accepted handshake carried (nil where the client sent none).
    var receivedServerNames: [String?] { serverNames.withLock { $0 } }

    init(fixture: TLSFixture, requireClientCertificate: Bool = false, expectsStartTLSLine: Bool = false) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw CommandFailed(command: "SSL_CTX_new", status: -1) }
        self.context = context
        self.expectsStartTLSLine = expectsStartTLSLine
        guard SSL_CTX_use_certificate_chain_file(context, fixture.serverCertificate) == 1,
            SSL_CTX_use_PrivateKey_file(context, fixture.serverKey, SSL_FILETYPE_PEM) == 1
        else { throw CommandFailed(command: "load server certificate", status: -1) }
        if requireClientCertificate {
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            _ = SSL_CTX_load_verify_locations(context, fixture.caFile, nil)
        }
        (listenDescriptor, port) = try listenOnLoopback()
        Thread.detachNewThread { [self] in self.acceptLoop() }
    }

    deinit { SSL_CTX_free(context) }

    func stop() {
        shutdown(listenDescriptor, Int32(SHUT_RDWR))
        Glibc.close(listenDescriptor)
    }

    private func acceptLoop() {
        blockSIGPIPEOnThisThread()
        while true {
            let descriptor = Glibc.accept(listenDescriptor, nil, nil)
            if descriptor < 0 {
                if errno == EINTR { continue }
                return
            }
            Thread.detachNewThread { [self] in self.serve(descriptor) }
        }
    }

    private func serve(_ descriptor: Int32) {
        blockSIGPIPEOnThisThread()
        defer { Glibc.close(descriptor) }
        if expectsStartTLSLine {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while recv(descriptor, &byte, 1, 0) == 1 {
                line.append(byte)
                if byte == UInt8(ascii: "\n") { break }
            }
            guard line == Array("STARTTLS\n".utf8) else { return }
            _ = send(descriptor, "GO\n", 3, 0)
        }
        guard let ssl = SSL_new(context) else { return }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, descriptor)
        guard SSL_accept(ssl) == 1 else { return }
        let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
        serverNames.withLock { $0.append(name) }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = SSL_read(ssl, &buffer, Int32(buffer.count))
            if count <= 0 { break }
            if SSL_write(ssl, buffer, count) <= 0 { break }
        }
        _ = SSL_shutdown(ssl)
    }
}
