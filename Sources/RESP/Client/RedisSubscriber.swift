import Synchronization
import Transport

/// A message received on a subscription.
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published to.
    public var channel: String
    /// The pattern that matched, for PSUBSCRIBE.
    public var pattern: String?
    /// The payload.
    public var payload: ByteBuffer
    /// True for the marker a subscription delivers after the subscriber reconnected and
    /// subscribed again: messages published while it was disconnected are lost (Redis pub/sub
    /// keeps nothing), so a consumer that needs them resynchronises from its source of truth.
    /// A marker has an empty channel and payload.
    public var isGap = false

    /// The payload as UTF-8 text.
    public var text: String { String(decoding: payload.readableBytesView, as: UTF8.self) }
}

/// Pub/sub over RESP3 pushes, on a connection of its own. Subscriptions are async sequences;
/// after the connection drops, it reconnects (with backoff) and subscribes again to every channel
/// and pattern still listened to. Messages published while it was disconnected are lost, as
/// Redis pub/sub defines; each subscription then delivers a marker (``RedisMessage/isGap``) so
/// that its consumer knows.
public final class RedisSubscriber: Sendable {
    enum Kind: String, Sendable {
        case channel = "SUBSCRIBE"
        case pattern = "PSUBSCRIBE"
        case shard = "SSUBSCRIBE"

        var unsubscribeCommand: String {
            switch self {
            case .channel: "UNSUBSCRIBE"
            case .pattern: "PUNSUBSCRIBE"
            case .shard: "SUNSUBSCRIBE"
            }
        }
    }

    private struct Listener {
        let kind: Kind
        let names: Set<String>
        let continuation: AsyncThrowingStream<RedisMessage, any Error>.Continuation
    }

    private struct State {
        var connection: RedisConnection?
        var listeners: [UInt64: Listener] = [:]
        var nextID: UInt64 = 1
        var isClosed = false
        var pump: Task<Void, Never>?
        var reconnects = 0
    }

    /// How the subscriber connects.
    public let configuration: RedisConfiguration
    private let state = Mutex(State())

    /// Creates a subscriber; it connects on the first subscription.
    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    /// How many times the connection was re-established.
    public var reconnectCount: Int { state.withLock { $0.reconnects } }

    /// Subscribes to channels.
    public func subscribe(_ channels: [String]) async throws -> AsyncThrowingStream<RedisMessage, any Error> {
        try await listen(.channel, channels)
    }

    /// Subscribes to glob patterns.
    public func psubscribe(_ patterns: [String]) async throws -> AsyncThrowingStream<RedisMessage, any Error> {
        try await listen(.pattern, patterns)
    }

    /// Subscribes to shard channels.
    public func ssubscribe(_ channels: [String]) async throws -> AsyncThrowingStream<RedisMessage, any Error> {
        try await listen(.shard, channels)
    }

    /// Ends every subscription and closes the connection.
    public func close() {
        let (connection, listeners, pump) = state.withLock { state in
            state.isClosed = true
            defer { state.listeners = [:]; state.connection = nil }
            return (state.connection, Array(state.listeners.values), state.pump)
        }
        pump?.cancel()
        connection?.close()
        for listener in listeners { listener.continuation.finish() }
    }

    private func listen(_ kind: Kind, _ names: [String]) async throws -> AsyncThrowingStream<RedisMessage, any Error> {
        guard !names.isEmpty else { throw RedisError(.usage, message: "\(kind.rawValue) needs at least one name") }
        let connection = try await currentConnection()
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: RedisMessage.self, bufferingPolicy: .bufferingNewest(100_000))
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            state.listeners[state.nextID] = Listener(kind: kind, names: Set(names), continuation: continuation)
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in self?.stopListening(id) }
        try await connection.sendForPushes([.string(kind.rawValue)] + names.map { .string($0) })
        return stream
    }

    private func stopListening(_ id: UInt64) {
        let (connection, removed, stillUsed) = state.withLock { state -> (RedisConnection?, Listener?, Set<String>) in
            let removed = state.listeners.removeValue(forKey: id)
            let used = Set(state.listeners.values.filter { $0.kind == removed?.kind }.flatMap(\.names))
            return (state.connection, removed, used)
        }
        guard let removed, let connection else { return }
        let names = removed.names.subtracting(stillUsed)
        guard !names.isEmpty else { return }
        Task { try? await connection.sendForPushes([.string(removed.kind.unsubscribeCommand)] + names.map { .string($0) }) }
    }

    private func currentConnection() async throws -> RedisConnection {
        if let connection = state.withLock({ $0.connection }), !connection.isClosed { return connection }
        let connection = try await RedisConnection.connect(configuration)
        let installed = state.withLock { state -> RedisConnection? in
            if state.isClosed { return nil }
            if let existing = state.connection, !existing.isClosed { return existing }
            state.connection = connection
            state.pump = Task { [weak self] in await self?.pump(connection) }
            return connection
        }
        guard let installed else {
            connection.close()
            throw RedisError(.connection, message: "subscriber is closed")
        }
        if installed !== connection { connection.close() }
        return installed
    }

    /// Delivers pushes until the connection ends, then reconnects and resubscribes.
    private func pump(_ connection: RedisConnection) async {
        for await push in connection.pushes {
            guard case .push(let items) = push.withoutAttributes, let kind = items.first?.string else { continue }
            let message: (kind: Kind, name: String, value: RedisMessage)?
            switch kind {
            case "message" where items.count == 3:
                message = (.channel, items[1].string ?? "", RedisMessage(channel: items[1].string ?? "", pattern: nil, payload: Self.bytes(items[2])))
            case "smessage" where items.count == 3:
                message = (.shard, items[1].string ?? "", RedisMessage(channel: items[1].string ?? "", pattern: nil, payload: Self.bytes(items[2])))
            case "pmessage" where items.count == 4:
                message = (.pattern, items[1].string ?? "", RedisMessage(channel: items[2].string ?? "", pattern: items[1].string, payload: Self.bytes(items[3])))
            default:
                message = nil
            }
            guard let message else { continue }
            let targets = state.withLock { state in
                state.listeners.values.filter { $0.kind == message.kind && $0.names.contains(message.name) }.map(\.continuation)
            }
            for target in targets { target.yield(message.value) }
        }
        await reconnect()
    }

    private func reconnect() async {
        var delay = Duration.milliseconds(50)
        while !Task.isCancelled {
            let closed = state.withLock { state -> Bool in
                state.connection = nil
                return state.isClosed
            }
            if closed { return }
            do {
                let connection = try await currentConnection()
                let subscriptions = state.withLock { state -> [(Kind, Set<String>)] in
                    state.reconnects += 1
                    var byKind: [Kind: Set<String>] = [:]
                    for listener in state.listeners.values { byKind[listener.kind, default: []].formUnion(listener.names) }
                    return byKind.map { ($0.key, $0.value) }
                }
                for (kind, names) in subscriptions where !names.isEmpty {
                    try await connection.sendForPushes([.string(kind.rawValue)] + names.sorted().map { .string($0) })
                }
                // Subscribed again: every subscription learns that it may have missed messages.
                let listeners = state.withLock { Array($0.listeners.values) }
                for listener in listeners {
                    listener.continuation.yield(RedisMessage(channel: "", pattern: nil, payload: ByteBuffer(), isGap: true))
                }
                return
            } catch {
                try? await Task.sleep(for: delay)
                delay = Swift.min(delay * 2, .seconds(2))
            }
        }
    }

    private static func bytes(_ value: RESPValue) -> ByteBuffer {
        switch value.withoutAttributes {
        case .bulkString(let bytes), .simpleString(let bytes): bytes
        default: ByteBuffer()
        }
    }
}
