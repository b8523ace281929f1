import Transport

/// Options of SET.
public struct SetOptions: Sendable {
    /// Only set if the key does not exist (NX) or only if it exists (XX).
    public enum Condition: Sendable { case ifAbsent, ifPresent }
    /// Expiry: EX seconds, PX milliseconds, or KEEPTTL.
    public enum Expiry: Sendable { case seconds(Int64), milliseconds(Int64), keepTTL }

    /// NX / XX.
    public var condition: Condition?
    /// EX / PX / KEEPTTL.
    public var expiry: Expiry?
    /// GET: return the old value.
    public var returnOldValue: Bool

    /// Creates options.
    public init(condition: Condition? = nil, expiry: Expiry? = nil, returnOldValue: Bool = false) {
        self.condition = condition
        self.expiry = expiry
        self.returnOldValue = returnOldValue
    }
}

extension RedisClient {
    // MARK: Strings

    /// GET: the value, or nil when the key does not exist.
    public func get(_ key: String) async throws -> String? {
        try await send(["GET", .string(key)]).decodeOptionalString("GET")
    }

    /// GET returning raw bytes.
    public func getBytes(_ key: String) async throws -> ByteBuffer? {
        switch try await send(["GET", .string(key)]).withoutAttributes {
        case .bulkString(let bytes): return bytes
        case .null: return nil
        case let other: throw RedisError(.unexpectedReply, message: "GET: expected a bulk string or null, got \(other.kindDescription)")
        }
    }

    /// SET with options. Returns whether the value was set (false when NX/XX prevented it), and
    /// the old value when `returnOldValue` was asked.
    @discardableResult
    public func set(_ key: String, _ value: RESPArgument, options: SetOptions = SetOptions()) async throws -> (wasSet: Bool, oldValue: String?) {
        var command: [RESPArgument] = ["SET", .string(key), value]
        switch options.condition {
        case .ifAbsent?: command.append("NX")
        case .ifPresent?: command.append("XX")
        case nil: break
        }
        switch options.expiry {
        case .seconds(let seconds)?: command += ["EX", .integer(seconds)]
        case .milliseconds(let milliseconds)?: command += ["PX", .integer(milliseconds)]
        case .keepTTL?: command.append("KEEPTTL")
        case nil: break
        }
        if options.returnOldValue { command.append("GET") }
        let reply = try await send(command)
        if options.returnOldValue {
            let old = try reply.decodeOptionalString("SET … GET")
            return (true, old)
        }
        switch reply.withoutAttributes {
        case .simpleString: return (true, nil)
        case .null: return (false, nil)
        default: throw RedisError(.unexpectedReply, message: "SET: expected OK or null, got \(reply.kindDescription)")
        }
    }

    /// MGET: one optional value per key.
    public func mget(_ keys: [String]) async throws -> [String?] {
        guard let elements = try await send(["MGET"] + keys.map { .string($0) }).decodeOptionalArray("MGET") else { return [] }
        var values: [String?] = []
        for element in elements { values.append(try element.decodeOptionalString("MGET")) }
        return values
    }

    /// MSET.
    public func mset(_ pairs: [(String, RESPArgument)]) async throws {
        try await send(["MSET"] + pairs.flatMap { [RESPArgument.string($0.0), $0.1] })
    }

    /// INCRBY (INCR when `by` is 1): the new value.
    @discardableResult
    public func increment(_ key: String, by amount: Int64 = 1) async throws -> Int64 {
        try await send(amount == 1 ? ["INCR", .string(key)] : ["INCRBY", .string(key), .integer(amount)]).decodeInteger("INCRBY")
    }

    /// DEL: how many keys were removed.
    @discardableResult
    public func delete(_ keys: String...) async throws -> Int64 {
        try await send(["DEL"] + keys.map { .string($0) }).decodeInteger("DEL")
    }

    /// EXISTS: how many of the keys exist.
    public func exists(_ keys: String...) async throws -> Int64 {
        try await send(["EXISTS"] + keys.map { .string($0) }).decodeInteger("EXISTS")
    }

    /// EXPIRE: whether the timeout was set.
    @discardableResult
    public func expire(_ key: String, seconds: Int64) async throws -> Bool {
        try await send(["EXPIRE", .string(key), .integer(seconds)]).decodeInteger("EXPIRE") == 1
    }

    /// TTL in seconds: nil when the key does not exist, -1 when it has no expiry.
    public func ttl(_ key: String) async throws -> Int64? {
        let seconds = try await send(["TTL", .string(key)]).decodeInteger("TTL")
        return seconds == -2 ? nil : seconds
    }

    // MARK: Hashes

    /// HSET: how many fields were added.
    @discardableResult
    public func hset(_ key: String, _ fields: [(String, RESPArgument)]) async throws -> Int64 {
        try await send(["HSET", .string(key)] + fields.flatMap { [RESPArgument.string($0.0), $0.1] }).decodeInteger("HSET")
    }

    /// HGET.
    public func hget(_ key: String, _ field: String) async throws -> String? {
        try await send(["HGET", .string(key), .string(field)]).decodeOptionalString("HGET")
    }

    /// HGETALL as a dictionary (a map in RESP3, a flat array in RESP2).
    public func hgetall(_ key: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        for pair in try await send(["HGETALL", .string(key)]).decodePairs("HGETALL") {
            guard let field = pair.key.string, let value = pair.value.string else {
                throw RedisError(.unexpectedReply, message: "HGETALL: expected string fields and values")
            }
            result[field] = value
        }
        return result
    }

    /// HDEL: how many fields were removed.
    @discardableResult
    public func hdel(_ key: String, _ fields: String...) async throws -> Int64 {
        try await send(["HDEL", .string(key)] + fields.map { .string($0) }).decodeInteger("HDEL")
    }

    // MARK: Lists

    /// LPUSH: the new length.
    @discardableResult
    public func lpush(_ key: String, _ values: [RESPArgument]) async throws -> Int64 {
        try await send(["LPUSH", .string(key)] + values).decodeInteger("LPUSH")
    }

    /// RPUSH: the new length.
    @discardableResult
    public func rpush(_ key: String, _ values: [RESPArgument]) async throws -> Int64 {
        try await send(["RPUSH", .string(key)] + values).decodeInteger("RPUSH")
    }

    /// LRANGE.
    public func lrange(_ key: String, _ start: Int64, _ stop: Int64) async throws -> [String] {
        let elements = try await send(["LRANGE", .string(key), .integer(start), .integer(stop)]).decodeOptionalArray("LRANGE") ?? []
        return try elements.map { element throws(RedisError) in try element.decodeOptionalString("LRANGE") ?? "" }
    }

    /// BRPOP on the blocking connection: the key and value, or nil after `timeout`.
    public func brpop(_ keys: [String], timeout: Duration) async throws -> (key: String, value: String)? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let reply = try await sendBlocking(["BRPOP"] + keys.map { .string($0) } + [.string(String(seconds))], serverTimeout: timeout)
        guard let elements = try reply.decodeOptionalArray("BRPOP") else { return nil }
        guard elements.count == 2, let key = elements[0].string, let value = elements[1].string else {
            throw RedisError(.unexpectedReply, message: "BRPOP: expected [key, value], got \(reply.kindDescription)")
        }
        return (key, value)
    }

    /// BLMOVE on the blocking connection: the moved element, or nil after `timeout`.
    public func blmove(from source: String, to destination: String, fromLeft: Bool, toLeft: Bool, timeout: Duration) async throws -> String? {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        return try await sendBlocking(
            ["BLMOVE", .string(source), .string(destination), fromLeft ? "LEFT" : "RIGHT", toLeft ? "LEFT" : "RIGHT", .string(String(seconds))],
            serverTimeout: timeout
        ).decodeOptionalString("BLMOVE")
    }

    // MARK: Sets and sorted sets

    /// SADD: how many members were added.
    @discardableResult
    public func sadd(_ key: String, _ members: [RESPArgument]) async throws -> Int64 {
        try await send(["SADD", .string(key)] + members).decodeInteger("SADD")
    }

    /// SMEMBERS.
    public func smembers(_ key: String) async throws -> Set<String> {
        let elements = try await send(["SMEMBERS", .string(key)]).decodeOptionalArray("SMEMBERS") ?? []
        return Set(elements.compactMap(\.string))
    }

    /// ZADD: how many members were added.
    @discardableResult
    public func zadd(_ key: String, _ members: [(score: Double, member: String)]) async throws -> Int64 {
        try await send(["ZADD", .string(key)] + members.flatMap { [RESPArgument.string(String($0.score)), .string($0.member)] }).decodeInteger("ZADD")
    }

    /// ZRANGE by index: the members in order.
    public func zrange(_ key: String, _ start: Int64, _ stop: Int64) async throws -> [String] {
        (try await send(["ZRANGE", .string(key), .integer(start), .integer(stop)]).decodeOptionalArray("ZRANGE") ?? []).compactMap(\.string)
    }

    // MARK: Streams

    /// XADD with an automatic id: the new entry's id.
    @discardableResult
    public func xadd(_ key: String, _ fields: [(String, RESPArgument)]) async throws -> String {
        guard let id = try await send(["XADD", .string(key), "*"] + fields.flatMap { [RESPArgument.string($0.0), $0.1] }).decodeOptionalString("XADD") else {
            throw RedisError(.unexpectedReply, message: "XADD: expected an id, got null")
        }
        return id
    }

    /// XACK: how many entries were acknowledged.
    @discardableResult
    public func xack(_ key: String, group: String, ids: [String]) async throws -> Int64 {
        try await send(["XACK", .string(key), .string(group)] + ids.map { .string($0) }).decodeInteger("XACK")
    }

    // MARK: Scripting

    /// EVALSHA, loading the script with EVAL when the server answers NOSCRIPT.
    public func evaluate(script: String, sha1: String, keys: [String] = [], arguments: [RESPArgument] = []) async throws -> RESPValue {
        let tail: [RESPArgument] = [.integer(Int64(keys.count))] + keys.map { .string($0) } + arguments
        do {
            return try await send(["EVALSHA", .string(sha1)] + tail)
        } catch let error as RedisError where error.code == RedisError.noScript {
            return try await send(["EVAL", .string(script)] + tail)
        }
    }

    // MARK: Transactions

    /// Optimistic locking: on a connection of its own, WATCHes `keys`, lets `body` read what it
    /// needs and return the commands to run, then runs them in MULTI/EXEC. If a watched key
    /// changed in between, throws `.transactionAborted` (EXEC's null reply), never an empty result.
    public func watchedTransaction(
        _ keys: [String], _ body: (RedisConnection) async throws -> [[RESPArgument]]
    ) async throws -> [RESPValue] {
        let connection = try await RedisConnection.connect(configuration)
        defer { connection.close() }
        try await connection.send(["WATCH"] + keys.map { .string($0) })
        let commands = try await body(connection)
        let replies = try await connection.pipeline([["MULTI"]] + commands + [["EXEC"]])
        return try Self.execResult(replies)
    }

    static func execResult(_ replies: [RESPValue]) throws(RedisError) -> [RESPValue] {
        if let failure = replies.dropLast().first(where: \.isError) {
            throw RedisError.server(failure.string ?? "")
        }
        switch replies[replies.count - 1].withoutAttributes {
        case .null:
            throw RedisError(.transactionAborted, message: "EXEC aborted: a watched key changed")
        case .array(let results):
            return results
        case let other where other.isError:
            throw RedisError.server(other.string ?? "")
        case let other:
            throw RedisError(.unexpectedReply, message: "EXEC: expected an array, got \(other.kindDescription)")
        }
    }

    /// MULTI … EXEC in one write on the shared connection: the commands run atomically; a
    /// command the server refuses at queue time fails the whole transaction with its error.
    public func transaction(_ commands: [[RESPArgument]]) async throws -> [RESPValue] {
        try Self.execResult(try await pipeline([["MULTI"]] + commands + [["EXEC"]]))
    }
}
