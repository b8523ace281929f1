import CTransport
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// A resolved socket address (sockaddr bytes) with a printable form.
struct SocketAddress: Sendable, CustomStringConvertible {
    let family: Int32
    let storage: [UInt8]
    let description: String

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        storage.withUnsafeBytes { raw in
            if let base = raw.baseAddress { return body(base.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count)) }
            // Never empty in practice; a zero length makes the system call fail with EINVAL.
            var empty = sockaddr()
            return withUnsafePointer(to: &empty) { body($0, 0) }
        }
    }

    static func ipv4(_ address: in_addr, port: Int) -> SocketAddress {
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr = address
        let bytes = withUnsafeBytes(of: &socketAddress) { Array($0) }
        return SocketAddress(family: AF_INET, storage: bytes, description: "\(format(address)):\(port)")
    }

    static func ipv6(_ socketAddress: sockaddr_in6) -> SocketAddress {
        var copy = socketAddress
        let bytes = withUnsafeBytes(of: &copy) { Array($0) }
        let port = Int(UInt16(bigEndian: socketAddress.sin6_port))
        return SocketAddress(family: AF_INET6, storage: bytes, description: "[\(format(socketAddress.sin6_addr))]:\(port)")
    }

    static func format(_ address: in_addr) -> String {
        var copy = address
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        _ = inet_ntop(AF_INET, &copy, &text, socklen_t(text.count))
        return String(nulTerminated: text)
    }

    static func format(_ address: in6_addr) -> String {
        var copy = address
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(AF_INET6, &copy, &text, socklen_t(text.count))
        return String(nulTerminated: text)
    }

    /// Parses an IPv4 or IPv6 literal without touching the resolver.
    static func numeric(host: String, port: Int) -> SocketAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return .ipv4(v4, port: port) }
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        v6.sin6_port = in_port_t(UInt16(port).bigEndian)
        var literal = host
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 { return .ipv6(v6) }
        return nil
    }

    /// Whether `host` is an IP literal (which gets no SNI and is verified as an address).
    static func isIPLiteral(_ host: String) -> Bool {
        numeric(host: host, port: 0) != nil
    }
}

/// Host name resolution with getaddrinfo, which blocks for as long as a DNS server takes to
/// answer. Each lookup runs on a serial queue of its own: serial queues target Dispatch's
/// overcommitting pool, which adds a thread when one blocks. A concurrent queue would not do, nor
/// `DispatchQueue.global()` — on Linux that is the pool that runs Swift's tasks, as wide as the
/// processors, and a slow lookup there stalls every task of the process.
enum Resolver {
    static func resolve(host: String, port: Int, endpoint: Endpoint) async throws -> [SocketAddress] {
        if let literal = SocketAddress.numeric(host: host, port: port) { return [literal] }
        return try await withUnsafeThrowingContinuation { continuation in
            DispatchQueue(label: "transport.resolver").async {
                continuation.resume(with: lookup(host: host, port: port, endpoint: endpoint))
            }
        }
    }

    private static func lookup(host: String, port: Int, endpoint: Endpoint) -> Result<[SocketAddress], any Error> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            let reason = String(cString: gai_strerror(status))
            return .failure(TransportError(.resolutionFailed, endpoint: endpoint, message: "could not resolve \(host): \(reason)"))
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                switch entry.pointee.ai_family {
                case AF_INET:
                    let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    addresses.append(.ipv4(v4.sin_addr, port: port))
                case AF_INET6:
                    let v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    addresses.append(.ipv6(v6))
                default:
                    break
                }
            }
            cursor = entry.pointee.ai_next
        }
        if addresses.isEmpty {
            return .failure(TransportError(.resolutionFailed, endpoint: endpoint, message: "\(host) has no IPv4 or IPv6 address"))
        }
        return .success(addresses)
    }
}

extension String {
    /// The text of a C character buffer up to its first NUL (the whole buffer if there is none).
    init(nulTerminated characters: [CChar]) {
        self.init(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
