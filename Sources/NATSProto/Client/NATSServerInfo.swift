import Foundation
import Transport

/// What a server says about itself in INFO, on connect and again when its cluster changes.
public struct NATSServerInfo: Sendable, Equatable, Decodable {
    /// The server's unique id.
    public var serverID: String
    /// The server's configured name.
    public var serverName: String?
    /// The server's version, e.g. `2.10.22`.
    public var version: String
    /// The protocol level (1: headers, no-responders and INFO updates).
    public var protocolLevel: Int
    /// Whether the server accepts headers (HPUB / HMSG).
    public var headers: Bool
    /// The largest message (headers and payload) the server accepts.
    public var maximumPayload: Int
    /// Whether the server asks for credentials.
    public var authRequired: Bool
    /// Whether the server insists on TLS.
    public var tlsRequired: Bool
    /// Whether the server offers TLS without insisting.
    public var tlsAvailable: Bool
    /// Whether the server asks for a client certificate.
    public var tlsVerify: Bool
    /// Other servers of the cluster, `host:port`.
    public var connectURLs: [String]
    /// The server is shutting down gracefully (lame-duck mode): move elsewhere.
    public var lameDuckMode: Bool
    /// The nonce to sign for NKey and JWT authentication.
    public var nonce: String?
    /// The id the server gave this connection.
    public var clientID: UInt64?
    /// This client's address as the server sees it.
    public var clientIP: String?
    /// Whether JetStream is enabled.
    public var jetStream: Bool
    /// The JetStream domain, if one is set.
    public var domain: String?

    private enum CodingKeys: String, CodingKey {
        case serverID = "server_id", serverName = "server_name", version, protocolLevel = "proto", headers
        case maximumPayload = "max_payload", authRequired = "auth_required", tlsRequired = "tls_required"
        case tlsAvailable = "tls_available", tlsVerify = "tls_verify", connectURLs = "connect_urls"
        case lameDuckMode = "ldm", nonce, clientID = "client_id", clientIP = "client_ip", jetStream = "jetstream", domain
    }

    /// Decodes INFO's JSON; absent fields take the protocol's defaults.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        serverID = try container.decodeIfPresent(String.self, forKey: .serverID) ?? ""
        serverName = try container.decodeIfPresent(String.self, forKey: .serverName)
        version = try container.decodeIfPresent(String.self, forKey: .version) ?? ""
        protocolLevel = try container.decodeIfPresent(Int.self, forKey: .protocolLevel) ?? 0
        headers = try container.decodeIfPresent(Bool.self, forKey: .headers) ?? false
        maximumPayload = try container.decodeIfPresent(Int.self, forKey: .maximumPayload) ?? 1 << 20
        authRequired = try container.decodeIfPresent(Bool.self, forKey: .authRequired) ?? false
        tlsRequired = try container.decodeIfPresent(Bool.self, forKey: .tlsRequired) ?? false
        tlsAvailable = try container.decodeIfPresent(Bool.self, forKey: .tlsAvailable) ?? false
        tlsVerify = try container.decodeIfPresent(Bool.self, forKey: .tlsVerify) ?? false
        connectURLs = try container.decodeIfPresent([String].self, forKey: .connectURLs) ?? []
        lameDuckMode = try container.decodeIfPresent(Bool.self, forKey: .lameDuckMode) ?? false
        nonce = try container.decodeIfPresent(String.self, forKey: .nonce)
        clientID = try container.decodeIfPresent(UInt64.self, forKey: .clientID)
        clientIP = try container.decodeIfPresent(String.self, forKey: .clientIP)
        jetStream = try container.decodeIfPresent(Bool.self, forKey: .jetStream) ?? false
        domain = try container.decodeIfPresent(String.self, forKey: .domain)
    }

    /// Parses the JSON of an INFO line.
    public init(json: ByteBuffer) throws(NATSError) {
        do {
            self = try JSONDecoder().decode(NATSServerInfo.self, from: Data(json.readableBytesView))
        } catch {
            throw NATSError(.protocolViolation, "INFO is not valid JSON: \(error)")
        }
        guard maximumPayload > 0 else {
            throw NATSError(.protocolViolation, "INFO announces max_payload \(maximumPayload)")
        }
    }
}
