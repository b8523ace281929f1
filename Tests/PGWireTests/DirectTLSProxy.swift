import COpenSSL
import Foundation
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A TLS-terminating proxy in front of the test PostgreSQL, as PostgreSQL 17's direct TLS
/// (`sslnegotiation=direct`) is seen by a client: the first bytes must be a TLS ClientHello (no
/// SSLRequest) that offers ALPN `postgresql`; anything else is refused. The decrypted stream goes
/// to the server in plain TCP. Written directly against OpenSSL, blocking, a thread per
/// connection, so that the client is tested against code it shares nothing with.
///
/// `@unchecked Sendable`: the `SSL_CTX` is configured in `init` and only read afterwards (OpenSSL
/// allows `SSL_new` from any thread on an unchanging context); the descriptor is an integer; the
/// counters are behind a mutex.
final class DirectTLSProxy: @unchecked Sendable {
    let port: Int
    private let listenDescriptor: Int32
    private let context: OpaquePointer
    private let backendPort: Int
    private let counts = Mutex((handshakes: 0, refusals: 0))

    /// Handshakes that offered ALPN `postgresql` and were forwarded.
    var handshakes: Int { counts.withLock { $0.handshakes } }
    /// Connections refused: not TLS, or TLS without ALPN `postgresql`.
    var refusals: Int { counts.withLock { $0.refusals } }

    /// `selectsALPN` false: the proxy ignores ALPN and takes any TLS client (a server that is
    /// not PostgreSQL, which a direct client must refuse).
    init(certificate: String, key: String, backendPort: Int, selectsALPN: Bool = true) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw CommandFailed(command: "SSL_CTX_new", status: -1) }
        self.context = context
        self.backendPort = backendPort
        guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1, SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1
        else { throw CommandFailed(command: "load the server certificate", status: -1) }
        // ALPN: select `postgresql` or fail the handshake (2: SSL_TLSEXT_ERR_ALERT_FATAL, the
        // no_application_protocol alert), as PostgreSQL does for a direct connection.
        if selectsALPN { Self.requireALPNPostgresql(context) }
        (listenDescriptor, port) = try listenOnLoopback()
        Thread.detachNewThread { [self] in self.acceptLoop() }
    }

    deinit { SSL_CTX_free(context) }

    private static func requireALPNPostgresql(_ context: OpaquePointer) {
        SSL_CTX_set_alpn_select_cb(
            context,
            { _, selected, selectedLength, offered, offeredLength, _ -> Int32 in
                guard let selected, let selectedLength, let offered else { return 2 }
                let wanted = Array("postgresql".utf8)
                var index = 0
                while index < Int(offeredLength) {
                    let length = Int(offered[index])
                    let start = index + 1
                    guard start + length <= Int(offeredLength) else { break }
                    if length == wanted.count, (0..<length).allSatisfy({ offered[start + $0] == wanted[$0] }) {
                        selected.pointee = UnsafePointer(offered + start)
                        selectedLength.pointee = UInt8(length)
                        return 0  // SSL_TLSEXT_ERR_OK
                    }
                    index = start + length
                }
                return 2
            }, nil)
    }

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

    private func connectToBackend() -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(backendPort).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            Glibc.close(descriptor)
            return nil
        }
        return descriptor
    }

    private func serve(_ client: Int32) {
        blockSIGPIPEOnThisThread()
        defer { Glibc.close(client) }
        guard let ssl = SSL_new(context) else { return }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, client)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard SSL_accept(ssl) == 1 else {
            counts.withLock { $0.refusals += 1 }
            return
        }
        counts.withLock { $0.handshakes += 1 }
        guard let backend = connectToBackend() else { return }
        defer { Glibc.close(backend) }
        setsockopt(backend, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 16384)
        var probes = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: backend, events: Int16(POLLIN), revents: 0)]
        while true {
            probes[0].revents = 0
            probes[1].revents = 0
            // Decrypted bytes OpenSSL already holds need no poll.
            if SSL_pending(ssl) == 0 {
                guard poll(&probes, 2, 30_000) > 0 else { return }
            } else {
                probes[0].revents = Int16(POLLIN)
            }
            if probes[0].revents != 0 {
                let count = SSL_read(ssl, &buffer, Int32(buffer.count))
                guard count > 0, sendAll(backend, buffer, Int(count)) else { return }
            }
            if probes[1].revents != 0 {
                let count = recv(backend, &buffer, buffer.count, 0)
                guard count > 0, SSL_write(ssl, buffer, Int32(count)) == Int32(count) else { return }
            }
        }
    }

    private func sendAll(_ descriptor: Int32, _ bytes: [UInt8], _ count: Int) -> Bool {
        var sent = 0
        while sent < count {
            let result = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return send(descriptor, base + sent, count - sent, Int32(MSG_NOSIGNAL))
            }
            guard result > 0 else { return false }
            sent += result
        }
        return true
    }
}
