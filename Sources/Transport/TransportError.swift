#if canImport(Glibc)
import Glibc
#endif

/// A failure of the transport: connecting, reading, writing, closing or TLS.
/// The description names the endpoint and, where there is one, the system error.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a value to switch on.
    public enum Kind: Sendable, Hashable {
        /// The host name did not resolve.
        case resolutionFailed
        /// Nothing listens at the endpoint (ECONNREFUSED, or ENOENT for a Unix socket).
        case connectionRefused
        /// The connection attempt failed for another reason (unreachable network, bad address …).
        case connectFailed
        /// The peer reset the connection (ECONNRESET).
        case connectionReset
        /// Writing to a connection the peer has closed (EPIPE).
        case brokenPipe
        /// The peer closed its side: no more bytes will arrive.
        case endOfStream
        /// The operation's deadline passed.
        case timedOut
        /// The calling task was cancelled.
        case cancelled
        /// The connection was closed locally.
        case closed
        /// A read or write was started while another of the same direction was pending.
        case concurrentOperation
        /// The server's certificate chain does not lead to a trusted root.
        case tlsCertificateUntrusted
        /// The server's certificate is not valid for the requested host name or address.
        case tlsHostnameMismatch
        /// The TLS configuration could not be loaded (missing CA file, bad key …).
        case tlsConfiguration
        /// Any other TLS failure (protocol error, handshake alert …).
        case tlsFailure
        /// Any other system error.
        case system
    }

    /// The kind of failure.
    public var kind: Kind
    /// The endpoint involved, when known.
    public var endpoint: Endpoint?
    /// The errno value, when a system call failed.
    public var errno: Int32?
    /// Human-readable detail.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, endpoint: Endpoint? = nil, errno: Int32? = nil, message: String) {
        let message = SafeText.escaped(message)
        self.kind = kind
        self.endpoint = endpoint
        self.errno = errno
        self.message = message
    }

    public var description: String {
        var text = SafeText.escaped(message)
        if let endpoint { text += " (\(endpoint))" }
        if let errno { text += ": " + String(cString: strerror(errno)) + " [errno \(errno)]" }
        return text
    }

    /// Maps a failed system call's errno to the kind a caller can act on.
    static func fromErrno(_ code: Int32, operation: String, endpoint: Endpoint?) -> TransportError {
        let kind: Kind
        switch code {
        case ECONNRESET: kind = .connectionReset
        case EPIPE: kind = .brokenPipe
        case ECONNREFUSED: kind = .connectionRefused
        case ETIMEDOUT: kind = .timedOut
        default: kind = .system
        }
        return TransportError(kind, endpoint: endpoint, errno: code, message: "\(operation) failed")
    }
}
