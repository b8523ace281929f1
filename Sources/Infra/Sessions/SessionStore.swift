import Foundation
import RESP
import Settings
import Transport

/// Sessions of the bot and web app: Codable values stored as JSON under `prefix + id`, each with
/// a time to live that ``touch(_:)`` renews.
public struct SessionStore<Session: Codable & Sendable>: Sendable {
    /// The client used.
    public let client: RedisClient
    /// Key prefix, such as `transcription:session:` (from the REDIS.SESSION_PREFIX setting).
    public let prefix: String
    /// Time to live of a session, renewed by put and touch.
    public let timeToLive: Duration

    /// Creates a store.
    public init(client: RedisClient, prefix: String, timeToLive: Duration) {
        self.client = client
        self.prefix = prefix
        self.timeToLive = timeToLive
    }

    /// A store with the key prefix and time to live of REDIS.SESSION_PREFIX and
    /// REDIS.SESSION_TTL_SECONDS.
    public init(client: RedisClient, settings: Settings) {
        self.init(client: client, prefix: settings.redis.sessionPrefix, timeToLive: .seconds(settings.redis.sessionTTLSeconds))
    }

    private var milliseconds: Int64 {
        let (seconds, attoseconds) = timeToLive.components
        return Swift.max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Stores (or replaces) a session and starts its time to live.
    public func put(_ id: String, _ session: Session) async throws {
        let data = try JSONEncoder().encode(session)
        try await client.set(prefix + id, .bytes(ByteBuffer(bytes: data)), options: SetOptions(expiry: .milliseconds(milliseconds)))
    }

    /// The session, or nil when it does not exist or expired. A stored value that does not decode
    /// as `Session` throws, naming the key.
    public func get(_ id: String) async throws -> Session? {
        guard let bytes = try await client.getBytes(prefix + id) else { return nil }
        do {
            return try JSONDecoder().decode(Session.self, from: Data(bytes.readableBytesView))
        } catch {
            throw RedisError(.unexpectedReply, message: "session \(prefix + id) does not decode as \(Session.self): \(error)")
        }
    }

    /// Renews the time to live; returns false when the session no longer exists.
    @discardableResult
    public func touch(_ id: String) async throws -> Bool {
        try await client.send(["PEXPIRE", .string(prefix + id), .integer(milliseconds)]).decodeInteger("PEXPIRE") == 1
    }

    /// Deletes a session; returns whether it existed.
    @discardableResult
    public func delete(_ id: String) async throws -> Bool {
        try await client.delete(prefix + id) == 1
    }
}
