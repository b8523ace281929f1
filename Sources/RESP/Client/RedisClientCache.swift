import Synchronization
import Transport

/// Client-side caching (RESP3 `CLIENT TRACKING`): replies to read commands kept in the process,
/// invalidated by the server's pushes on the same connection.
public struct RedisClientCacheConfiguration: Sendable {
    /// How the server tracks what to invalidate.
    public enum Mode: Sendable, Equatable {
        /// The server remembers the keys this connection read and invalidates those (its
        /// tracking table costs server memory per key read).
        case `default`
        /// The server invalidates every key with one of these prefixes, read or not; only keys
        /// under them are cached (an empty list: every key).
        case broadcast(prefixes: [String])
    }

    /// How the server tracks what to invalidate.
    public var mode: Mode
    /// At most this many replies are kept; the least recently used goes first.
    public var maximumEntries: Int
    /// At most about this many bytes are kept (command, keys and reply, with a small overhead
    /// per value); the least recently used go first. A reply larger than an eighth of it is
    /// not cached.
    public var maximumBytes: Int
    /// The read commands whose replies are cached (upper case). Each must be read-only and
    /// answer from its keys alone; see ``defaultCommands``.
    public var commands: Set<String>

    /// Read-only commands that depend only on their keys' contents, with their keys where
    /// ``RedisClientCache`` expects them: the key first, or (MGET, EXISTS) every argument.
    public static let defaultCommands: Set<String> = [
        "GET", "GETRANGE", "STRLEN", "MGET", "EXISTS", "TYPE",
        "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS", "HSTRLEN",
        "LRANGE", "LLEN", "LINDEX",
        "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD",
        "ZRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZRANK", "ZREVRANK", "ZCOUNT",
    ]

    /// Commands whose every argument is a key.
    static let allArgumentsAreKeys: Set<String> = ["MGET", "EXISTS"]

    /// Creates a configuration: 10,000 entries and 64 MiB by default.
    public init(mode: Mode = .default, maximumEntries: Int = 10_000, maximumBytes: Int = 64 << 20, commands: Set<String> = defaultCommands) {
        self.mode = mode
        self.maximumEntries = maximumEntries
        self.maximumBytes = maximumBytes
        self.commands = commands
    }

    /// The `CLIENT TRACKING ON` command for this mode.
    var trackingCommand: [RESPArgument] {
        var command: [RESPArgument] = ["CLIENT", "TRACKING", "ON"]
        if case .broadcast(let prefixes) = mode {
            command.append("BCAST")
            for prefix in prefixes { command += ["PREFIX", .string(prefix)] }
        }
        return command
    }
}

/// The local cache of a ``RedisClient``: replies keyed by their command's bytes, least recently
/// used first out, each entry listed under the keys it read so that an invalidation finds it.
///
/// A read that misses reserves its keys before the command is sent; an invalidation of one of
/// them (or a flush) cancels the reservation, so a reply that was overtaken by a write is
/// returned to its caller but never stored. Invalidations are handled by the connection's reader
/// in stream order (see ``RedisConnection/observePushes(_:)``), so one that the server sent
/// before a reply is always seen before that reply's caller stores it.
public final class RedisClientCache: Sendable {
    /// What a lookup found.
    enum Lookup {
        /// The stored reply.
        case hit(RESPValue)
        /// Not stored; the read is reserved under `token` (hand it to ``store(_:token:reply:)``).
        case miss(token: UInt64)
    }

    /// A command's cache identity: its encoded bytes, and which of its arguments are keys.
    struct Request {
        let command: ByteBuffer
        let arguments: [RESPArgument]
        let keyRange: Range<Int>

        /// The keys the command reads, as bytes: built on demand (a hit needs none).
        var keys: [ByteBuffer] { arguments[keyRange].map(RedisClientCache.bytes(of:)) }
    }

    /// Counters, for tests and metrics.
    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var stores = 0
        /// Replies not stored because an invalidation or flush overtook them.
        public var discardedStores = 0
        public var invalidations = 0
        public var evictions = 0
        public var flushes = 0
        /// Entries and their bytes now.
        public var entries = 0
        public var bytes = 0
    }

    private struct Entry {
        var command: ByteBuffer
        var keys: [ByteBuffer]
        var reply: RESPValue
        var size: Int
        var older: Int
        var newer: Int
    }

    private struct Storage {
        /// Entries by index; freed indices are reused.
        var entries: [Entry?] = []
        var free: [Int] = []
        var byCommand: [ByteBuffer: Int] = [:]
        /// The entries that read each key.
        var byKey: [ByteBuffer: [Int]] = [:]
        /// Reads in flight, by key: their tokens.
        var reservations: [ByteBuffer: [UInt64]] = [:]
        var nextToken: UInt64 = 1
        /// The least and the most recently used entry (-1: none).
        var oldest = -1
        var newest = -1
        var statistics = Statistics()

        mutating func unlink(_ index: Int) {
            guard let entry = entries[index] else { return }
            if entry.older >= 0 { entries[entry.older]?.newer = entry.newer } else { oldest = entry.newer }
            if entry.newer >= 0 { entries[entry.newer]?.older = entry.older } else { newest = entry.older }
        }

        mutating func linkAsNewest(_ index: Int) {
            entries[index]?.older = newest
            entries[index]?.newer = -1
            if newest >= 0 { entries[newest]?.newer = index } else { oldest = index }
            newest = index
        }

        mutating func remove(_ index: Int) {
            guard let entry = entries[index] else { return }
            unlink(index)
            entries[index] = nil
            free.append(index)
            byCommand[entry.command] = nil
            for key in entry.keys {
                guard var listed = byKey[key] else { continue }
                listed.removeAll { $0 == index }
                byKey[key] = listed.isEmpty ? nil : listed
            }
            statistics.entries -= 1
            statistics.bytes -= entry.size
        }

        /// Removes reservation `token` from each of `keys`; true when every key still held it
        /// (no invalidation or flush came since the lookup).
        mutating func endReservation(_ token: UInt64, of keys: [ByteBuffer]) -> Bool {
            var held = true
            for key in keys {
                guard var tokens = reservations[key], let position = tokens.firstIndex(of: token) else {
                    held = false
                    continue
                }
                tokens.remove(at: position)
                reservations[key] = tokens.isEmpty ? nil : tokens
            }
            return held
        }

        mutating func invalidate(_ key: ByteBuffer) {
            reservations[key] = nil
            guard let listed = byKey[key] else { return }
            for index in listed { remove(index) }
            statistics.invalidations += 1
        }

        mutating func flush() {
            entries.removeAll()
            free.removeAll()
            byCommand.removeAll()
            byKey.removeAll()
            reservations.removeAll()
            oldest = -1
            newest = -1
            statistics.entries = 0
            statistics.bytes = 0
            statistics.flushes += 1
        }
    }

    /// How the cache was configured.
    public let configuration: RedisClientCacheConfiguration
    private let storage = Mutex(Storage())
    private let prefixes: [[UInt8]]?

    /// Creates an empty cache.
    public init(configuration: RedisClientCacheConfiguration) {
        self.configuration = configuration
        if case .broadcast(let prefixes) = configuration.mode {
            self.prefixes = prefixes.map { Array($0.utf8) }
        } else {
            self.prefixes = nil
        }
    }

    /// The counters and the current size.
    public var statistics: Statistics { storage.withLock { $0.statistics } }

    /// Drops every entry and cancels every reservation.
    public func flush() {
        storage.withLock { $0.flush() }
    }

    /// The cache identity of `arguments` when it is a cacheable read, else nil.
    func request(for arguments: [RESPArgument]) -> Request? {
        guard arguments.count >= 2, let name = Self.upperCasedName(arguments[0]), configuration.commands.contains(name) else { return nil }
        let keyRange = RedisClientCacheConfiguration.allArgumentsAreKeys.contains(name) ? 1..<arguments.count : 1..<2
        if let prefixes, !prefixes.isEmpty {
            for index in keyRange where !prefixes.contains(where: { Self.argument(arguments[index], startsWith: $0) }) { return nil }
        }
        var command = ByteBuffer()
        RESPCommandEncoder.encode(arguments, into: &command)
        return Request(command: command, arguments: arguments, keyRange: keyRange)
    }

    /// The stored reply of `request`, or a reservation for it.
    func lookup(_ request: Request) -> Lookup {
        storage.withLock { storage -> Lookup in
            if let index = storage.byCommand[request.command], let entry = storage.entries[index] {
                storage.unlink(index)
                storage.linkAsNewest(index)
                storage.statistics.hits += 1
                return .hit(entry.reply)
            }
            storage.statistics.misses += 1
            let token = storage.nextToken
            storage.nextToken &+= 1
            // Only a miss builds the keys: it goes to the server anyway.
            for key in request.keys { storage.reservations[key, default: []].append(token) }
            return .miss(token: token)
        }
    }

    /// Stores `reply` for `request` unless an invalidation or flush came since its lookup; an
    /// error reply is never stored. Ends the reservation either way.
    func store(_ request: Request, token: UInt64, reply: RESPValue) {
        let keys = request.keys
        let size = request.command.readableBytes + keys.reduce(0) { $0 + $1.readableBytes + 32 } + Self.size(of: reply) + 96
        storage.withLock { storage in
            guard storage.endReservation(token, of: keys) else {
                storage.statistics.discardedStores += 1
                return
            }
            // Never an error, nor the QUEUED of a read sent inside someone's MULTI (no cacheable
            // read answers QUEUED as a simple string).
            guard !reply.isError, !Self.isQueued(reply), size <= configuration.maximumBytes / 8, configuration.maximumEntries > 0 else { return }
            if let existing = storage.byCommand[request.command] { storage.remove(existing) }
            while storage.oldest >= 0,
                storage.statistics.entries + 1 > configuration.maximumEntries || storage.statistics.bytes + size > configuration.maximumBytes
            {
                storage.remove(storage.oldest)
                storage.statistics.evictions += 1
            }
            let entry = Entry(command: request.command, keys: keys, reply: Self.compacted(reply), size: size, older: -1, newer: -1)
            let index: Int
            if let reused = storage.free.popLast() {
                index = reused
                storage.entries[index] = entry
            } else {
                index = storage.entries.count
                storage.entries.append(entry)
            }
            storage.linkAsNewest(index)
            storage.byCommand[request.command] = index
            for key in keys { storage.byKey[key, default: []].append(index) }
            storage.statistics.entries += 1
            storage.statistics.bytes += size
            storage.statistics.stores += 1
        }
    }

    /// Ends a reservation whose read failed.
    func cancel(_ request: Request, token: UInt64) {
        let keys = request.keys
        storage.withLock { _ = $0.endReservation(token, of: keys) }
    }

    /// Handles what the connection's reader saw: an invalidation push drops its keys' entries
    /// (a null list: everything, as after FLUSHALL); the connection's end drops everything,
    /// since its invalidations stop with it. Returns whether the push was an invalidation.
    func observe(_ event: RedisConnection.PushEvent) -> Bool {
        switch event {
        case .closed:
            flush()
            return false
        case .push(let value):
            guard case .push(let parts) = value.withoutAttributes, parts.count == 2,
                case .bulkString(let kind)? = parts.first, kind.readableBytesView.elementsEqual("invalidate".utf8)
            else { return false }
            switch parts[1].withoutAttributes {
            case .array(let keys), .set(let keys):
                storage.withLock { storage in
                    for key in keys {
                        switch key.withoutAttributes {
                        case .bulkString(let bytes), .simpleString(let bytes): storage.invalidate(bytes)
                        default: break
                        }
                    }
                }
            default:
                flush()  // null: the server dropped everything (FLUSHALL, or its tracking table)
            }
            return true
        }
    }

    // MARK: - Helpers

    private static func isQueued(_ reply: RESPValue) -> Bool {
        if case .simpleString(let text) = reply { return text.readableBytesView.elementsEqual("QUEUED".utf8) }
        return false
    }

    private static func upperCasedName(_ argument: RESPArgument) -> String? {
        switch argument {
        case .string(let name): name.utf8.count <= 16 ? name.uppercased() : nil
        case .bytes(let bytes): bytes.readableBytes <= 16 ? String(decoding: bytes.readableBytesView, as: UTF8.self).uppercased() : nil
        case .integer: nil
        }
    }

    /// Whether `argument`'s bytes start with `prefix`, read in place.
    private static func argument(_ argument: RESPArgument, startsWith prefix: [UInt8]) -> Bool {
        switch argument {
        case .string(let string): string.utf8.starts(with: prefix)
        case .bytes(let bytes): bytes.readableBytesView.starts(with: prefix)
        case .integer(let integer): String(integer).utf8.starts(with: prefix)
        }
    }

    private static func bytes(of argument: RESPArgument) -> ByteBuffer {
        switch argument {
        case .string(let string): ByteBuffer(string: string)
        case .bytes(let bytes): compacted(bytes)
        case .integer(let integer): ByteBuffer(string: String(integer))
        }
    }

    /// A copy of `bytes` in storage of its own: a slice of a read buffer would keep the whole
    /// buffer alive as long as the entry.
    private static func compacted(_ bytes: ByteBuffer) -> ByteBuffer {
        var copy = ByteBuffer(capacity: bytes.readableBytes)
        copy.writeBuffer(bytes)
        return copy
    }

    private static func compacted(_ value: RESPValue) -> RESPValue {
        switch value {
        case .simpleString(let bytes): .simpleString(compacted(bytes))
        case .simpleError(let bytes): .simpleError(compacted(bytes))
        case .bulkString(let bytes): .bulkString(compacted(bytes))
        case .bulkError(let bytes): .bulkError(compacted(bytes))
        case .verbatimString(let format, let text): .verbatimString(format: format, text: compacted(text))
        case .array(let values): .array(values.map(compacted))
        case .set(let values): .set(values.map(compacted))
        case .push(let values): .push(values.map(compacted))
        case .map(let pairs): .map(pairs.map { RESPPair(key: compacted($0.key), value: compacted($0.value)) })
        case .attributed(let value, let attributes):
            .attributed(compacted(value), attributes: attributes.map { RESPPair(key: compacted($0.key), value: compacted($0.value)) })
        case .integer, .null, .boolean, .double, .bigNumber: value
        }
    }

    /// About what `value` takes in memory: its bytes and 32 per value.
    static func size(of value: RESPValue) -> Int {
        switch value {
        case .simpleString(let bytes), .simpleError(let bytes), .bulkString(let bytes), .bulkError(let bytes): 32 + bytes.readableBytes
        case .verbatimString(let format, let text): 32 + format.utf8.count + text.readableBytes
        case .bigNumber(let text): 32 + text.utf8.count
        case .array(let values), .set(let values), .push(let values): values.reduce(32) { $0 + size(of: $1) }
        case .map(let pairs): pairs.reduce(32) { $0 + size(of: $1.key) + size(of: $1.value) }
        case .attributed(let value, let attributes): attributes.reduce(size(of: value)) { $0 + size(of: $1.key) + size(of: $1.value) }
        case .integer, .null, .boolean, .double: 32
        }
    }
}
