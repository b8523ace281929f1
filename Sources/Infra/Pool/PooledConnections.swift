import PGWire
import RESP

extension PostgresConnection: PooledConnection {
    /// An empty query.
    public func isAlive() async -> Bool { await ping() }
}

extension RedisConnection: PooledConnection {
    /// A PING.
    public func isAlive() async -> Bool { await ping() }
}
