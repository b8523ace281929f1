/// Where a connection goes: a TCP host and port, or a Unix domain socket path.
public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// A host name or IP literal and a TCP port.
    case tcp(host: String, port: Int)
    /// A filesystem path of a Unix domain socket, such as `/var/run/postgresql/.s.PGSQL.5432`.
    case unix(path: String)

    /// The TCP port (nil for a Unix socket).
    public var port: Int? {
        if case .tcp(_, let port) = self { return port }
        return nil
    }

    /// `host:port`, with IPv6 literals in brackets, or `unix:path`.
    public var description: String {
        switch self {
        case .tcp(let host, let port):
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path):
            "unix:\(path)"
        }
    }
}
