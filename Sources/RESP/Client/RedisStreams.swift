import Transport

/// One entry of a Redis stream.
public struct StreamEntry: Sendable, Equatable {
    /// The entry id (`1700000000000-0`).
    public var id: String
    /// Field/value pairs in the order they were added.
    public var fields: [(name: String, value: String)]

    /// The value of `name`, if present.
    public subscript(name: String) -> String? { fields.first { $0.name == name }?.value }

    public static func == (lhs: StreamEntry, rhs: StreamEntry) -> Bool {
        lhs.id == rhs.id && lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }
}

extension RedisClient {
    /// XREAD: entries after the given ids, per stream. With `block`, waits up to that long on the
    /// blocking connection; nil entries mean the wait ended with nothing new.
    public func xread(_ streams: [(key: String, after: String)], count: Int? = nil, block: Duration? = nil) async throws -> [String: [StreamEntry]] {
        var command: [RESPArgument] = ["XREAD"]
        if let count { command += ["COUNT", .integer(Int64(count))] }
        if let block { command += ["BLOCK", .integer(Self.milliseconds(block))] }
        command += ["STREAMS"] + streams.map { .string($0.key) } + streams.map { .string($0.after) }
        let reply = try await sendStreamRead(command, block: block)
        return try Self.decodeStreams(reply, command: "XREAD")
    }

    /// XREADGROUP: entries for `consumer` of `group` (`>` for new ones), per stream; acknowledged
    /// later with ``xack(_:group:ids:)`` unless `noAck`.
    public func xreadgroup(
        group: String, consumer: String, _ streams: [(key: String, after: String)], count: Int? = nil, block: Duration? = nil,
        noAck: Bool = false
    ) async throws -> [String: [StreamEntry]] {
        var command: [RESPArgument] = ["XREADGROUP", "GROUP", .string(group), .string(consumer)]
        if let count { command += ["COUNT", .integer(Int64(count))] }
        if let block { command += ["BLOCK", .integer(Self.milliseconds(block))] }
        if noAck { command.append("NOACK") }
        command += ["STREAMS"] + streams.map { .string($0.key) } + streams.map { .string($0.after) }
        let reply = try await sendStreamRead(command, block: block)
        return try Self.decodeStreams(reply, command: "XREADGROUP")
    }

    /// A blocking read goes to the blocking connection with its own timeout; others are ordinary.
    private func sendStreamRead(_ command: [RESPArgument], block: Duration?) async throws -> RESPValue {
        if let block { return try await sendBlocking(command, serverTimeout: block) }
        return try await send(command)
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// A map of stream name to entries (RESP3), or RESP2's array of [name, entries]; null is empty.
    static func decodeStreams(_ reply: RESPValue, command: String) throws(RedisError) -> [String: [StreamEntry]] {
        let pairs: [RESPPair]
        switch reply.withoutAttributes {
        case .null:
            return [:]
        case .map(let map):
            pairs = map
        case .array(let items):
            var collected: [RESPPair] = []
            for item in items {
                guard case .array(let pair) = item.withoutAttributes, pair.count == 2 else {
                    throw RedisError(.unexpectedReply, message: "\(command): expected [stream, entries], got \(item.kindDescription)")
                }
                collected.append(RESPPair(key: pair[0], value: pair[1]))
            }
            pairs = collected
        default:
            throw RedisError(.unexpectedReply, message: "\(command): expected a map of streams, got \(reply.kindDescription)")
        }
        var result: [String: [StreamEntry]] = [:]
        for pair in pairs {
            guard let name = pair.key.string, let entries = try pair.value.decodeOptionalArray(command) else {
                throw RedisError(.unexpectedReply, message: "\(command): expected a stream name and its entries")
            }
            result[name] = try entries.map { entry throws(RedisError) in try decodeEntry(entry, command: command) }
        }
        return result
    }

    static func decodeEntry(_ entry: RESPValue, command: String) throws(RedisError) -> StreamEntry {
        guard case .array(let parts) = entry.withoutAttributes, parts.count == 2, let id = parts[0].string else {
            throw RedisError(.unexpectedReply, message: "\(command): expected [id, fields], got \(entry.kindDescription)")
        }
        let flat = try parts[1].decodeOptionalArray(command) ?? []
        guard flat.count % 2 == 0 else { throw RedisError(.unexpectedReply, message: "\(command): odd number of field items in \(id)") }
        var fields: [(name: String, value: String)] = []
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let name = flat[index].string, let value = flat[index + 1].string else {
                throw RedisError(.unexpectedReply, message: "\(command): fields of \(id) must be strings")
            }
            fields.append((name, value))
        }
        return StreamEntry(id: id, fields: fields)
    }
}
