import Synchronization
import Transport

/// A Redis client for services: one pipelined connection shared by all tasks, reconnected for new
/// commands after it drops (commands in flight at that moment fail with a connection error and
/// are never retried behind the caller's back; an idle connection the server closed is noticed
/// and replaced before a command is sent on it), plus a second connection used only for blocking
/// commands so they never hold up the others.
public final class RedisClient: Sendable {
    /// How the client connects.
    public let configuration: RedisConfiguration
    private let shared = ConnectionSlot()
    private let blocking = ConnectionSlot()
    /// The local cache of read replies, when ``RedisConfiguration/clientCache`` is set.
    public let cache: RedisClientCache?
    /// With Redis Sentinel: listens for `+switch-master` and drops the connections to the old
    /// master as soon as the sentinels announce the new one.
    private let watcher: SentinelWatcher?

    /// Creates a client; nothing connects until the first command.
    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        cache = configuration.clientCache.map { RedisClientCache(configuration: $0) }
        watcher = configuration.sentinel.map { [shared, blocking, logger = configuration.logger] sentinel in
            SentinelWatcher(configuration: configuration, sentinel: sentinel) { address in
                logger.info("the sentinels switched the master; reconnecting", metadata: ["master": "\(sentinel.masterName)", "address": "\(address)"])
                for slot in [shared, blocking] {
                    if let task = slot.take() { Task { try? await task.value.close() } }
                }
            }
        }
    }

    /// How many `+switch-master` announcements for this client's master the sentinels made
    /// since the client started listening (on its first connection); 0 without Sentinel.
    public var masterSwitchCount: Int { watcher?.switchCount ?? 0 }

    /// Creates a client from a `redis://` or `rediss://` URL.
    public convenience init(url: String) throws(RedisError) {
        self.init(configuration: try RedisConfiguration(url: url))
    }

    /// Closes both connections (and stops listening to the sentinels).
    public func close() {
        watcher?.stop()
        for slot in [shared, blocking] {
            if let task = slot.take() {
                Task { try? await task.value.close() }
            }
        }
    }

    /// The shared connection, connecting (once, for all waiting callers) when there is none.
    public func connection() async throws -> RedisConnection {
        try await connection(in: shared)
    }

    private func connection(in slot: ConnectionSlot) async throws -> RedisConnection {
        let configuration = configuration
        let cache = slot === shared ? cache : nil
        watcher?.start()
        // A connection closed since it was made is replaced once; one that is closed again at
        // once (a server that drops every connection) is an error, not a reconnect loop.
        for _ in 0..<2 {
            let task = slot.current {
                Task {
                    let connection = try await RedisConnection.connect(configuration)
                    if let cache { try await Self.startTracking(on: connection, for: cache) }
                    return connection
                }
            }
            do {
                let connection = try await task.value
                // An idle connection the server has closed (a restart) is replaced before a
                // command is sent on it; nothing is resent.
                if !connection.closeIfDeadAfterIdle() { return connection }
            } catch {
                slot.clear(ifStill: task)
                throw error
            }
            if slot.clear(ifStill: task) { configuration.logger.info("the connection closed; reconnecting for new commands") }
        }
        throw RedisError(.connection, message: "the server closed the new connection at once")
    }

    /// Turns tracking on for a new connection of a caching client. Entries read on an earlier
    /// connection are dropped first (their invalidations ended with it), and the cache watches
    /// this connection's pushes before the server starts sending them.
    private static func startTracking(on connection: RedisConnection, for cache: RedisClientCache) async throws {
        guard connection.protocolVersion == 3 else {
            connection.close()
            throw RedisError(.usage, message: "client-side caching needs RESP3 (Redis 6 or later); the server refused HELLO 3")
        }
        cache.flush()
        connection.observePushes { cache.observe($0) }
        do {
            try await connection.send(cache.configuration.trackingCommand)
        } catch {
            connection.close()
            throw error
        }
    }

    /// Sends any command and returns the server's RESP3 value; error replies throw ``RedisError``.
    /// With client-side caching on, a cacheable read is answered from the cache when it can be.
    @discardableResult
    public func send(_ arguments: [RESPArgument], timeout: Duration? = nil) async throws -> RESPValue {
        guard let cache, let request = cache.request(for: arguments) else {
            return try await connection().send(arguments, timeout: timeout)
        }
        // The connection first: a new one empties the cache, reservations included.
        let connection = try await connection()
        let token: UInt64
        switch cache.lookup(request) {
        case .hit(let reply): return reply
        case .miss(let reserved): token = reserved
        }
        do {
            let reply = try await connection.send(arguments, timeout: timeout)
            cache.store(request, token: token, reply: reply)
            return reply
        } catch {
            cache.cancel(request, token: token)
            throw error
        }
    }

    /// Sends a batch in one write and returns every reply in order (errors as values).
    public func pipeline(_ commands: [[RESPArgument]]) async throws -> [RESPValue] {
        try await connection().pipeline(commands)
    }

    /// Sends a batch in one write, keeping only the error replies with their commands' indices:
    /// for bulk writes (see ``RedisConnection/pipelineDiscardingReplies(_:timeout:)``).
    public func pipelineDiscardingReplies(_ commands: [[RESPArgument]]) async throws -> [(index: Int, error: RedisError)] {
        try await connection().pipelineDiscardingReplies(commands)
    }

    /// Sends a blocking command on the dedicated connection, with a deadline past its own timeout.
    func sendBlocking(_ arguments: [RESPArgument], serverTimeout: Duration) async throws -> RESPValue {
        let connection = try await connection(in: blocking)
        return try await connection.send(arguments, timeout: serverTimeout + .seconds(5))
    }
}

/// The task that connects (or connected) one of the client's connections, shared by all callers.
final class ConnectionSlot: Sendable {
    private let task = Mutex<Task<RedisConnection, any Error>?>(nil)

    /// The current connecting task, made with `make` when there is none.
    func current(_ make: () -> Task<RedisConnection, any Error>) -> Task<RedisConnection, any Error> {
        task.withLock { current in
            if let current { return current }
            let made = make()
            current = made
            return made
        }
    }

    /// Forgets `expected` if it is still the current task (a failed or closed connection).
    @discardableResult
    func clear(ifStill expected: Task<RedisConnection, any Error>) -> Bool {
        task.withLock { current in
            guard current == expected else { return false }
            current = nil
            return true
        }
    }

    /// Removes and returns the current task.
    func take() -> Task<RedisConnection, any Error>? {
        task.withLock { current in
            defer { current = nil }
            return current
        }
    }
}

// MARK: - Decoding replies

extension RESPValue {
    /// The reply as a string (simple, bulk or verbatim); nil for null; throws for other types.
    public func decodeOptionalString(_ command: String) throws(RedisError) -> String? {
        switch withoutAttributes {
        case .null: return nil
        case .simpleString, .bulkString, .verbatimString: return string
        default: throw RedisError(.unexpectedReply, message: "\(command): expected a string or null, got \(kindDescription)")
        }
    }

    /// The reply as an integer; throws for other types.
    public func decodeInteger(_ command: String) throws(RedisError) -> Int64 {
        if case .integer(let value) = withoutAttributes { return value }
        throw RedisError(.unexpectedReply, message: "\(command): expected an integer, got \(kindDescription)")
    }

    /// The elements of an array or set reply; nil for null.
    public func decodeOptionalArray(_ command: String) throws(RedisError) -> [RESPValue]? {
        switch withoutAttributes {
        case .array(let elements), .set(let elements): return elements
        case .null: return nil
        default: throw RedisError(.unexpectedReply, message: "\(command): expected an array, got \(kindDescription)")
        }
    }

    /// A map reply as pairs; a RESP2 flat array of alternating keys and values is accepted too.
    public func decodePairs(_ command: String) throws(RedisError) -> [RESPPair] {
        switch withoutAttributes {
        case .map(let pairs): return pairs
        case .array(let flat) where flat.count % 2 == 0:
            return stride(from: 0, to: flat.count, by: 2).map { RESPPair(key: flat[$0], value: flat[$0 + 1]) }
        default: throw RedisError(.unexpectedReply, message: "\(command): expected a map, got \(kindDescription)")
        }
    }

    /// A short name of the value's type, for error messages.
    public var kindDescription: String {
        switch withoutAttributes {
        case .simpleString: "a simple string"
        case .simpleError: "an error"
        case .integer(let value): "the integer \(value)"
        case .bulkString(let bytes): "a bulk string of \(bytes.readableBytes) bytes"
        case .null: "null"
        case .boolean(let flag): "the boolean \(flag)"
        case .double(let value): "the double \(value)"
        case .bigNumber: "a big number"
        case .bulkError: "an error"
        case .verbatimString: "a verbatim string"
        case .array(let elements): "an array of \(elements.count)"
        case .map(let pairs): "a map of \(pairs.count)"
        case .set(let elements): "a set of \(elements.count)"
        case .push: "a push"
        case .attributed: "an attributed value"
        }
    }
}
