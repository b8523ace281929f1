import CTransport

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket whose accepted connections are driven by the reactor like outgoing ones.
/// Used by fake servers in tests and by tools that need a local endpoint.
public final class Listener: Sendable {
    /// The bound address; for TCP with port 0 it carries the port the kernel chose.
    public let endpoint: Endpoint
    private let registration: IORegistration

    private init(endpoint: Endpoint, registration: IORegistration) {
        self.endpoint = endpoint
        self.registration = registration
    }

    deinit {
        registration.close()
    }

    /// Binds a TCP listener on `host` (an IP literal; loopback by default) and `port` (0 picks a free one).
    public static func bind(
        host: String = "127.0.0.1", port: Int = 0, backlog: Int32 = 512, reactor: Reactor = .shared
    ) throws -> Listener {
        let requested = Endpoint.tcp(host: host, port: port)
        guard let address = SocketAddress.numeric(host: host, port: port) else {
            throw TransportError(.connectFailed, endpoint: requested, message: "listener host must be an IP literal")
        }
        let descriptor = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TransportError.fromErrno(errno, operation: "socket", endpoint: requested) }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { Glibc.bind(descriptor, $0, $1) }
        guard bound == 0, listen(descriptor, backlog) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw TransportError.fromErrno(code, operation: "bind", endpoint: requested)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let actualPort = withUnsafeMutablePointer(to: &storage) { pointer -> Int in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
            if address.family == AF_INET {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
        }
        let endpoint = Endpoint.tcp(host: host, port: actualPort)
        do {
            return Listener(endpoint: endpoint, registration: try reactor.register(descriptor: descriptor, endpoint: endpoint))
        } catch {
            Glibc.close(descriptor)
            throw error
        }
    }

    /// Binds a Unix domain socket listener at `path` (an existing socket file there is replaced).
    public static func bind(unixPath path: String, backlog: Int32 = 512, reactor: Reactor = .shared) throws -> Listener {
        let endpoint = Endpoint.unix(path: path)
        var address = sockaddr_un()
        let length = ctransport_make_sockaddr_un(&address, path)
        guard length > 0 else { throw TransportError(.connectFailed, endpoint: endpoint, message: "Unix socket path is too long") }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TransportError.fromErrno(errno, operation: "socket", endpoint: endpoint) }
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(descriptor, $0, socklen_t(length)) }
        }
        guard bound == 0, listen(descriptor, backlog) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw TransportError.fromErrno(code, operation: "bind", endpoint: endpoint)
        }
        do {
            return Listener(endpoint: endpoint, registration: try reactor.register(descriptor: descriptor, endpoint: endpoint))
        } catch {
            Glibc.close(descriptor)
            throw error
        }
    }

    /// Waits for the next incoming connection.
    public func accept(deadline: Deadline = .never) async throws -> Connection {
        while true {
            let epoch = try registration.begin(.read)
            let descriptor = Glibc.accept(registration.descriptor, nil, nil)
            let code = errno
            registration.end()
            if descriptor >= 0 {
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
                _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
                if case .tcp = endpoint {
                    var one: Int32 = 1
                    _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
                do {
                    return try Connection(accepted: descriptor, endpoint: endpoint, reactor: registration.reactor)
                } catch {
                    Glibc.close(descriptor)
                    throw error
                }
            }
            switch code {
            case EAGAIN, EWOULDBLOCK:
                try await registration.wait(for: .read, seenEpoch: epoch, deadline: deadline)
            case EINTR, ECONNABORTED:
                continue
            default:
                throw TransportError.fromErrno(code, operation: "accept", endpoint: endpoint)
            }
        }
    }

    /// Stops listening; a pending ``accept(deadline:)`` fails with `.closed`. Idempotent.
    public func close() {
        registration.close()
    }
}
