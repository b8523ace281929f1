import Foundation
import NATSProto

struct ConsumerCreateRequest: Encodable {
    var stream: String
    var config: ConsumerConfig
    /// `create` (fail if it exists with another configuration), `update`, or nil (either).
    var action: String?

    enum CodingKeys: String, CodingKey {
        case stream = "stream_name", config, action
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(stream, forKey: .stream)
        try container.encode(config, forKey: .config)
        try container.encode(ifPresent: action, forKey: .action)
    }
}

struct ConsumerNamesPage: APIPage {
    var total: Int
    var consumers: [String]?
    var items: [String] { consumers ?? [] }
}

struct ConsumerListPage: APIPage {
    var total: Int
    var consumers: [ConsumerInfo]?
    var items: [ConsumerInfo] { consumers ?? [] }
}

struct ConsumerPauseRequest: Encodable {
    var pause_until: String?
}

/// The answer to a pause or resume.
public struct ConsumerPauseResponse: Decodable, Sendable {
    public var paused: Bool
    /// RFC 3339.
    public var pauseUntil: String?

    enum CodingKeys: String, CodingKey {
        case paused, pauseUntil = "pause_until"
    }
}

extension JetStreamContext {
    /// How a consumer create behaves when the consumer exists.
    public enum ConsumerCreateAction: String, Sendable {
        /// Create, or return the existing one if its configuration is the same.
        case createOrUpdate = ""
        /// Fail when it exists with another configuration.
        case create
        /// Fail when it does not exist.
        case update
    }

    /// Creates (or updates) a consumer on `stream`. On nats-server 2.9+ the named form
    /// `CONSUMER.CREATE.<stream>.<name>[.<filter>]` is used (the name is `name`, else
    /// `durableName`, else a fresh one for an ephemeral consumer); on older servers the durable
    /// form `CONSUMER.DURABLE.CREATE.<stream>.<durable>`, or `CONSUMER.CREATE.<stream>`.
    @discardableResult
    public func createConsumer(_ config: ConsumerConfig, stream: String, action: ConsumerCreateAction = .createOrUpdate)
        async throws(JetStreamError) -> ConsumerInfo
    {
        try JetStreamName.validate(stream, as: "stream")
        var config = config
        if let durable = config.durableName { try JetStreamName.validate(durable, as: "consumer") }
        if let name = config.name { try JetStreamName.validate(name, as: "consumer") }
        try require(config.featuresMissing(on: serverVersion), for: "consumer on \(stream)")
        let version = serverVersion
        let body = ConsumerCreateRequest(stream: stream, config: config, action: action == .createOrUpdate ? nil : action.rawValue)
        if action != .createOrUpdate, version < ServerVersion(2, 10) {
            throw JetStreamError(.usage, message: "create-only and update-only consumer calls need nats-server 2.10, not \(version)")
        }
        guard version >= ServerVersion(2, 9) else {
            if let durable = config.durableName {
                return try await request("CONSUMER.DURABLE.CREATE.\(stream).\(durable)", body: body, as: ConsumerInfo.self)
            }
            return try await request("CONSUMER.CREATE.\(stream)", body: body, as: ConsumerInfo.self)
        }
        if config.name == nil { config.name = config.durableName ?? Self.ephemeralName() }
        let name = config.name ?? ""
        var operation = "CONSUMER.CREATE.\(stream).\(name)"
        // One literal filter subject goes into the subject too, so permissions can match it (a
        // filter with wildcards cannot be part of a subject one publishes to).
        if let filter = config.filterSubject, config.filterSubjects == nil, !filter.isEmpty, !filter.contains("*"), !filter.contains(">") {
            operation += "." + filter
        }
        return try await request(
            operation, body: ConsumerCreateRequest(stream: stream, config: config, action: body.action), as: ConsumerInfo.self)
    }

    /// A name for an ephemeral consumer: 8 random base-62 characters.
    static func ephemeralName() -> String {
        var nuid = NUID()
        return String(nuid.next().suffix(8))
    }

    /// A consumer's configuration and state (`CONSUMER.INFO`).
    public func consumerInfo(_ name: String, stream: String) async throws(JetStreamError) -> ConsumerInfo {
        try JetStreamName.validate(stream, as: "stream")
        try JetStreamName.validate(name, as: "consumer")
        return try await request("CONSUMER.INFO.\(stream).\(name)", as: ConsumerInfo.self)
    }

    /// Deletes a consumer (`CONSUMER.DELETE`).
    public func deleteConsumer(_ name: String, stream: String) async throws(JetStreamError) {
        try JetStreamName.validate(stream, as: "stream")
        try JetStreamName.validate(name, as: "consumer")
        _ = try await request("CONSUMER.DELETE.\(stream).\(name)", as: SuccessResponse.self)
    }

    /// The names of a stream's consumers (`CONSUMER.NAMES`, all pages).
    public func consumerNames(stream: String) async throws(JetStreamError) -> [String] {
        try JetStreamName.validate(stream, as: "stream")
        return try await allPages("CONSUMER.NAMES.\(stream)", as: ConsumerNamesPage.self)
    }

    /// Every consumer of a stream (`CONSUMER.LIST`, all pages).
    public func consumers(stream: String) async throws(JetStreamError) -> [ConsumerInfo] {
        try JetStreamName.validate(stream, as: "stream")
        return try await allPages("CONSUMER.LIST.\(stream)", as: ConsumerListPage.self)
    }

    /// Pauses a consumer until `until` (RFC 3339), or resumes it (nil) — nats-server 2.11+.
    @discardableResult
    public func pauseConsumer(_ name: String, stream: String, until: String?) async throws(JetStreamError) -> ConsumerPauseResponse {
        try JetStreamName.validate(stream, as: "stream")
        try JetStreamName.validate(name, as: "consumer")
        if serverVersion < ServerVersion(2, 11) { try require(["pause (2.11)"], for: "consumer \(name)") }
        return try await request("CONSUMER.PAUSE.\(stream).\(name)", body: ConsumerPauseRequest(pause_until: until), as: ConsumerPauseResponse.self)
    }
}
