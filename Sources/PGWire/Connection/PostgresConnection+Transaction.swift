import Transport

/// How a transaction is isolated (`BEGIN ISOLATION LEVEL …`).
public enum PostgresIsolationLevel: String, Sendable {
    /// READ COMMITTED (the server's default).
    case readCommitted = "READ COMMITTED"
    /// REPEATABLE READ.
    case repeatableRead = "REPEATABLE READ"
    /// SERIALIZABLE.
    case serializable = "SERIALIZABLE"
}

extension PostgresConnection {
    /// Runs `body` in a transaction: BEGIN (with the isolation level and access mode asked for),
    /// COMMIT when `body` returns, ROLLBACK when it throws or its task is cancelled. A COMMIT the
    /// server turns into a rollback (the transaction had failed) throws.
    ///
    /// Other tasks' queries on this connection would run inside the transaction too: give a
    /// transaction a connection of its own.
    public func withTransaction<Result: Sendable>(
        isolation: PostgresIsolationLevel? = nil, readOnly: Bool = false, deferrable: Bool = false,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var begin = "BEGIN"
        if let isolation { begin += " ISOLATION LEVEL \(isolation.rawValue)" }
        if readOnly { begin += " READ ONLY" }
        if deferrable { begin += " DEFERRABLE" }
        _ = try await simpleQuery(begin)
        let result: Result
        do {
            result = try await body(self)
            // Cancelled after its body: the caller asked to stop, so nothing is committed.
            if Task.isCancelled { throw PostgresError(.cancelled, message: "the task was cancelled; the transaction was rolled back") }
        } catch {
            await rollBack()
            throw error
        }
        do {
            let commit = try await simpleQuery("COMMIT")
            if commit.first?.commandTag == "ROLLBACK" {
                throw PostgresError(.server, message: "the transaction had failed; COMMIT rolled it back")
            }
        } catch {
            // COMMIT was cancelled, refused or never sent: leave no transaction open.
            if transactionStatus != .idle { await rollBack() }
            throw error
        }
        return result
    }

    /// ROLLBACK, even when this task was cancelled: from a task of its own, which is not, so it
    /// is sent and never itself cancelled.
    private func rollBack() async {
        guard !isClosed else { return }
        _ = await Task.detached { try? await self.simpleQuery("ROLLBACK") }.value
    }

    /// `"name"` with embedded quotes doubled: an identifier the server reads as written.
    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
