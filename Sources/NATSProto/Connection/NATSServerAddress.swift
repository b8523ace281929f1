import Foundation
import Transport

/// One entry of the server pool.
struct NATSServerAddress: Sendable, Equatable {
    var host: String
    var port: Int
    /// `tls://`: TLS is required.
    var tlsRequired: Bool
    var user: String?
    var password: String?
    var token: String?
    /// Learned from a server's `connect_urls` rather than configured.
    var isDiscovered = false

    /// `nats://host:port` (no credentials): for logs, events and errors.
    var redacted: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(tlsRequired ? "tls" : "nats")://\(shownHost):\(port)"
    }

    /// The same server, whatever the credentials or scheme.
    func sameEndpoint(_ other: NATSServerAddress) -> Bool { host == other.host && port == other.port }

    /// A server without credentials.
    init(host: String, port: Int, tlsRequired: Bool) {
        self.host = host
        self.port = port
        self.tlsRequired = tlsRequired
    }

    /// Parses a server URL.
    init(parsing text: String) throws(NATSError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let full = trimmed.contains("://") ? trimmed : "nats://" + trimmed
        let parsed: ConnectionURL
        do throws(ConnectionURLError) {
            parsed = try ConnectionURL(parsing: full)
        } catch {
            throw NATSError(.usage, "invalid NATS server URL \(Redaction.url(full, bareUserInfoIsSecret: true)): \(error.message)")
        }
        switch parsed.scheme.lowercased() {
        case "nats": tlsRequired = false
        case "tls": tlsRequired = true
        default:
            throw NATSError(.usage, "unsupported scheme \"\(parsed.scheme)\" in a NATS server URL: use nats:// or tls://")
        }
        guard parsed.hosts.count == 1, let hostPort = parsed.hosts.first, !hostPort.host.isEmpty else {
            throw NATSError(.usage, "a NATS server URL names one host: \(Redaction.url(full, bareUserInfoIsSecret: true))")
        }
        host = hostPort.host
        port = hostPort.port ?? 4222
        if let password = parsed.password {
            user = parsed.user ?? ""
            self.password = password
        } else if let single = parsed.user, !single.isEmpty {
            token = single
        }
    }

    /// A server learned from `connect_urls` (`host:port`), with no credentials of its own.
    init?(discovered text: String, tlsRequired: Bool) {
        guard let server = try? NATSServerAddress(parsing: text) else { return nil }
        self = server
        self.user = nil
        self.password = nil
        self.token = nil
        self.tlsRequired = tlsRequired
        self.isDiscovered = true
    }
}
