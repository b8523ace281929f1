import Transport

/// SCAN, HSCAN, SSCAN or ZSCAN as an async sequence: each step fetches the next page with the
/// cursor the server returned, until it returns 0. Elements may repeat, as the commands document.
public struct RedisScanSequence: AsyncSequence, Sendable {
    public typealias Element = RESPValue

    let client: RedisClient
    let command: [RESPArgument]
    let match: String?
    let count: Int?

    /// Iterates the elements (for HSCAN and ZSCAN, field and value alternate, as the server sends them).
    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: RedisScanSequence
        var cursor = "0"
        var page: [RESPValue] = []
        var pageIndex = 0
        var finished = false

        public mutating func next() async throws -> RESPValue? {
            while pageIndex >= page.count {
                if finished { return nil }
                var arguments = sequence.command + [.string(cursor)]
                if let match = sequence.match { arguments += ["MATCH", .string(match)] }
                if let count = sequence.count { arguments += ["COUNT", .integer(Int64(count))] }
                let reply = try await sequence.client.send(arguments)
                guard let parts = try reply.decodeOptionalArray("SCAN"), parts.count == 2, let next = parts[0].string,
                    let elements = try parts[1].decodeOptionalArray("SCAN")
                else {
                    throw RedisError(.unexpectedReply, message: "SCAN: expected [cursor, elements], got \(reply.kindDescription)")
                }
                cursor = next
                finished = next == "0"
                page = elements
                pageIndex = 0
            }
            defer { pageIndex += 1 }
            return page[pageIndex]
        }
    }

    /// Starts iterating.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(sequence: self) }
}

extension RedisClient {
    /// Keys matching `pattern`, fetched page by page with SCAN.
    public func scan(match pattern: String? = nil, count: Int? = nil) -> RedisScanSequence {
        RedisScanSequence(client: self, command: ["SCAN"], match: pattern, count: count)
    }

    /// Fields and values of a hash, alternating, with HSCAN.
    public func hscan(_ key: String, match pattern: String? = nil, count: Int? = nil) -> RedisScanSequence {
        RedisScanSequence(client: self, command: ["HSCAN", .string(key)], match: pattern, count: count)
    }

    /// Members of a set with SSCAN.
    public func sscan(_ key: String, match pattern: String? = nil, count: Int? = nil) -> RedisScanSequence {
        RedisScanSequence(client: self, command: ["SSCAN", .string(key)], match: pattern, count: count)
    }

    /// Members and scores of a sorted set, alternating, with ZSCAN.
    public func zscan(_ key: String, match pattern: String? = nil, count: Int? = nil) -> RedisScanSequence {
        RedisScanSequence(client: self, command: ["ZSCAN", .string(key)], match: pattern, count: count)
    }
}
