import Transport

extension PostgresConnection {
    /// LISTENs to `channel` (quoted as an identifier); notifications arrive on ``notifications``.
    public func listen(_ channel: String) async throws(PostgresError) {
        _ = try await simpleQuery("LISTEN \(Self.quoteIdentifier(channel))")
    }

    /// Stops listening to `channel`.
    public func unlisten(_ channel: String) async throws(PostgresError) {
        _ = try await simpleQuery("UNLISTEN \(Self.quoteIdentifier(channel))")
    }

    /// Sends a notification with `pg_notify` (the payload is a bound parameter).
    public func notify(_ channel: String, payload: String = "") async throws(PostgresError) {
        _ = try await execute("SELECT pg_notify(\(channel), \(payload))")
    }
}
