extension PostgresConnection {
    /// What statements on this connection have left in the session since it was last reset.
    public var sessionChanges: PostgresSessionChanges { state.withLock { $0.machine.sessionChanges } }

    /// For a connection nobody is using: whether it is closed, or the server closed it or sent
    /// something unasked (a FATAL before closing, after a restart or `pg_terminate_backend`).
    /// One `poll`, no waiting; a pool asks before handing the connection out, so that a caller
    /// never meets the failure of a connection that died while idle.
    public var isBrokenWhileIdle: Bool { isClosed || transport.hasUnexpectedInput }

    /// Whether a CancelRequest of this connection may still reach the server.
    public var hasCancelInFlight: Bool { state.withLock { $0.cancelTarget != nil } }

    /// Waits until no CancelRequest of this connection can still reach the server (the cancel
    /// connection was closed and its target ended), up to the configuration's cancel grace
    /// period. False when that is still not certain: the connection must not serve anyone else.
    public func waitForCancelToSettle() async -> Bool {
        let deadline = ContinuousClock.now + configuration.cancelGracePeriod
        while hasCancelInFlight {
            guard ContinuousClock.now < deadline, !isClosed else { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return !isClosed
    }

    /// Makes the connection fit for its next user, undoing what its last user left: an open or
    /// failed transaction is rolled back, `LISTEN`s, `SET`s and held cursors are cleared, in one
    /// round trip and only when there is something to clear. False when the connection cannot be
    /// proven clean (it is closed, a cancel may still be in flight, the user `PREPARE`d statements
    /// of their own, or the reset failed): then it must be closed rather than reused.
    public func prepareForReuse() async -> Bool {
        guard await waitForCancelToSettle() else { return false }
        let (status, changes) = state.withLock { ($0.machine.transactionStatus, $0.machine.sessionChanges) }
        if changes.contains(.preparedStatements) { return false }
        var statements: [String] = []
        if status != .idle { statements.append("ROLLBACK") }
        if changes.contains(.listening) { statements.append("UNLISTEN *") }
        if changes.contains(.settings) { statements += ["SET SESSION AUTHORIZATION DEFAULT", "RESET ALL"] }
        if changes.contains(.cursors) { statements.append("CLOSE ALL") }
        guard !statements.isEmpty else { return true }
        do {
            _ = try await simpleQuery(statements.joined(separator: "; "), timeout: configuration.cancelGracePeriod)
        } catch {
            return false
        }
        state.withLock { $0.machine.sessionChanges = [] }
        return transactionStatus == .idle
    }

    /// Resets everything a session can hold, advisory locks and temporary tables included
    /// (`DISCARD ALL`, after rolling back any transaction); the statement cache starts empty, as
    /// the server forgets its statements. For pools that cannot rely on command tags alone.
    public func resetSession() async throws(PostgresError) {
        if transactionStatus != .idle { _ = try await simpleQuery("ROLLBACK") }
        _ = try await simpleQuery("DISCARD ALL")
        state.withLock {
            $0.machine.sessionChanges = []
            $0.statements.removeAll()
        }
    }

    /// Proves the connection alive with the cheapest round trip there is (an empty query).
    public func ping(timeout: Duration = .seconds(5)) async -> Bool {
        guard !isClosed else { return false }
        do {
            _ = try await simpleQuery("", timeout: timeout)
            return true
        } catch {
            return false
        }
    }
}
