import Synchronization
import Transport

extension PostgresConnection {
    // MARK: - Simple protocol

    /// Runs `sql` with the simple query protocol: any number of statements separated by
    /// semicolons, without parameters, results in text. Returns one result per statement. An
    /// error stops the string there (earlier statements of an implicit transaction are rolled back)
    /// and is thrown. Past `timeout`, the server is asked to cancel it (as when the calling task
    /// is cancelled): it then fails with ``PostgresError/Kind/queryCancelled``.
    public func simpleQuery(_ sql: String, timeout: Duration? = nil) async throws(PostgresError) -> [PostgresQueryResult] {
        let mayCopy = Self.mayStartCopy(sql)
        let id = try await submit(timeout: timeout, exclusive: mayCopy) { (out: inout ByteBuffer, _: inout StatementCache) throws(PostgresError) in
            do throws(FrontendEncodingError) {
                try FrontendMessage.query(sql, into: &out)
            } catch {
                throw PostgresError(.usage, message: error.message)
            }
        }
        var results: [PostgresQueryResult] = []
        var current = PostgresQueryResult(columns: [], rows: [], commandTag: "")
        var failure: PostgresError?
        while true {
            let (events, complete) = try await nextEvents(id)
            for event in events {
                switch event {
                case .rowDescription(let description):
                    current.columns = description.columns
                case .row(let row):
                    current.rows.append(PostgresRow(columns: current.columns, data: row))
                case .commandComplete(let tag):
                    current.commandTag = tag
                    results.append(current)
                    current = PostgresQueryResult(columns: [], rows: [], commandTag: "")
                case .emptyQuery:
                    results.append(current)
                case .error(let diagnostics):
                    failure = .server(diagnostics)
                case .copyIn:
                    // COPY FROM STDIN inside a simple query needs data this call has none of.
                    refuseCopyIn("COPY FROM STDIN is not supported by simpleQuery; use copyIn", extendedProtocol: false)
                case .copyOut, .copyData, .copyDone:
                    break  // COPY TO STDOUT output is dropped here; copyOut streams it
                default:
                    break
                }
            }
            if complete { break }
        }
        if let failure { throw failure }
        return results
    }

    // MARK: - Extended protocol

    /// Runs one statement with its parameters bound (never spliced into the SQL), results in
    /// binary, and returns its rows as they arrive. The statement is prepared once per connection
    /// and cached. Throws the server's error if the statement fails before its first row. Past
    /// `timeout`, or when the calling task is cancelled, the server is asked to cancel it.
    public func query(_ query: PostgresQuery, timeout: Duration? = nil) async throws(PostgresError) -> PostgresRowSequence {
        var retried = false
        while true {
            let (id, plan) = try await submitExtended(query, timeout: timeout)
            let stream = PostgresRowStream(connection: self, id: id)
            do throws(PostgresError) {
                let columns = try await stream.start(plan: plan)
                if plan.isNew, let key = plan.key {
                    state.withLock { $0.statements.describe(key, name: plan.statement, columns: columns) }
                }
                return PostgresRowSequence(stream: stream, columns: columns)
            } catch {
                if let key = plan.key, plan.isNew || error.sqlState == .featureNotSupported {
                    forgetStatement(key)
                }
                // "cached plan must not change result type": the table changed under a cached
                // statement. Prepare it again, once, when the session can still run it.
                if !retried, error.sqlState == .featureNotSupported, plan.key != nil, !plan.isNew,
                    error.message.contains("cached plan"), transactionStatus != .failed
                {
                    retried = true
                    continue
                }
                throw error
            }
        }
    }

    /// Runs one statement and collects its result: all rows and the command tag.
    @discardableResult
    public func execute(_ query: PostgresQuery, timeout: Duration? = nil) async throws(PostgresError) -> PostgresQueryResult {
        let rows = try await self.query(query, timeout: timeout)
        let collected = try await rows.collect()
        return PostgresQueryResult(columns: rows.columns, rows: collected, commandTag: rows.stream.commandTag ?? "")
    }

    /// What was sent for an extended query.
    struct Plan: Sendable {
        /// The statement name ("" for the unnamed statement).
        var statement: String
        /// The cache key, when the statement is cached.
        var key: StatementCache.Key?
        /// Whether Parse was sent with this request.
        var isNew: Bool
        /// The result columns, when the cache knows them (no Describe was sent).
        var columns: [RowDescription.Column]?
    }

    private func submitExtended(_ query: PostgresQuery, timeout: Duration?) async throws(PostgresError) -> (UInt64, Plan) {
        let bindings = query.bindings
        guard !bindings.isOversized else { throw PostgresError(.usage, message: "a parameter is larger than the protocol's 2 GiB limit") }
        var plan = Plan(statement: "", key: nil, isNew: true, columns: nil)
        let mayCopy = Self.mayStartCopy(query.sql)
        let id = try await submit(timeout: timeout, exclusive: mayCopy) { (out: inout ByteBuffer, cache: inout StatementCache) throws(PostgresError) in
            plan = try Self.encodeExtended(query.sql, bindings, describe: true, &out, &cache)
        }
        return (id, plan)
    }

    /// Parse (unless cached), Bind, Describe (when the columns are unknown and `describe`),
    /// Execute, and Sync unless `sync` is false (the next execution shares the batch's Sync).
    private static func encodeExtended(
        _ sql: String, _ bindings: PostgresBindings, describe: Bool, sync: Bool = true, _ out: inout ByteBuffer,
        _ cache: inout StatementCache
    ) throws(PostgresError) -> Plan {
        var plan = Plan(statement: "", key: nil, isNew: true, columns: nil)
        do throws(FrontendEncodingError) {
            if cache.isEnabled {
                let key = StatementCache.Key(sql: sql, types: bindings.dataTypes)
                plan.key = key
                if let entry = cache.lookup(key) {
                    plan.statement = entry.name
                    plan.isNew = false
                    plan.columns = entry.columns
                } else {
                    let (name, evicted) = cache.insert(key)
                    if let evicted { try FrontendMessage.close(.statement, name: evicted, into: &out) }
                    plan.statement = name
                    try FrontendMessage.parse(statement: name, sql: sql, parameterTypes: bindings.dataTypes, into: &out)
                }
            } else {
                try FrontendMessage.parse(statement: "", sql: sql, parameterTypes: bindings.dataTypes, into: &out)
            }
            try FrontendMessage.bind(
                portal: "", statement: plan.statement, parameterCount: bindings.count, parameterFormats: [true],
                parameters: bindings.bytes, binaryResults: true, into: &out)
            if describe && plan.columns == nil { try FrontendMessage.describe(.portal, name: "", into: &out) }
            try FrontendMessage.execute(portal: "", into: &out)
            if sync { FrontendMessage.sync(into: &out) }
        } catch {
            throw PostgresError(.usage, message: error.message)
        }
        return plan
    }

    /// Runs `sql` once for each set of `bindings`, all written together: the fast way to insert
    /// or update many rows one statement at a time. Returns each execution's command tag. Replies
    /// are read while the batch is still being written, so no size of batch can stall the session.
    ///
    /// `atomic` (the default) sends one Sync after the last execution, so the batch is one
    /// implicit transaction: the first error rolls all of it back and is thrown, with the failing
    /// execution's index in the message (inside an explicit transaction, that transaction fails).
    /// Otherwise each execution has its own Sync and transaction, a failure affects only its own,
    /// and outcomes are returned per execution, in order.
    public func executeMany(
        _ sql: String, _ bindings: [PostgresBindings], atomic: Bool = true
    ) async throws(PostgresError) -> [Result<String, PostgresError>] {
        guard !bindings.isEmpty else { return [] }
        guard !Self.mayStartCopy(sql) else { throw PostgresError(.usage, message: "executeMany does not run COPY; use copyIn") }
        guard !bindings.contains(where: \.isOversized) else {
            throw PostgresError(.usage, message: "a parameter is larger than the protocol's 2 GiB limit")
        }
        var firstPlan: Plan?
        let requests = atomic ? 1 : bindings.count
        let first = try await submit(count: requests, flushInBackground: true) { (out: inout ByteBuffer, cache: inout StatementCache) throws(PostgresError) in
            try Self.encodeMany(sql, bindings, atomic: atomic, firstPlan: &firstPlan, &out, &cache)
        }
        var outcomes: [Result<String, PostgresError>] = []
        outcomes.reserveCapacity(bindings.count)
        if atomic {
            let consumer = RequestConsumer(connection: self, id: first, isExtendedQuery: true)
            do throws(PostgresError) {
                while let events = try await consumer.nextEvents() {
                    for event in events {
                        if case .commandComplete(let tag) = event { outcomes.append(.success(tag)) }
                    }
                }
            } catch {
                if let plan = firstPlan, plan.isNew, let key = plan.key, outcomes.isEmpty { forgetStatement(key) }
                guard error.diagnostics != nil else { throw error }
                var failed = error
                failed.message = "execution \(outcomes.count) of \(bindings.count) failed, the batch was rolled back: \(error.message)"
                throw failed
            }
            return outcomes
        }
        for offset in 0..<UInt64(requests) {
            let consumer = RequestConsumer(connection: self, id: first + offset, isExtendedQuery: true)
            do throws(PostgresError) {
                try await consumer.drain()
                outcomes.append(.success(consumer.commandTag ?? ""))
            } catch where error.diagnostics != nil {
                outcomes.append(.failure(error))
            }
        }
        // A statement whose Parse failed must not stay in the cache.
        if let plan = firstPlan, plan.isNew, let key = plan.key, case .failure? = outcomes.first { forgetStatement(key) }
        return outcomes
    }

    /// Encodes every execution of a batch. An execution whose parameter types are those of the
    /// one before binds the statement already parsed: its Bind is the previous one's fixed part
    /// and its own parameters, with no cache lookup or Parse (within the batch nothing else can
    /// replace the unnamed statement between them).
    private static func encodeMany(
        _ sql: String, _ bindings: [PostgresBindings], atomic: Bool, firstPlan: inout Plan?, _ out: inout ByteBuffer,
        _ cache: inout StatementCache
    ) throws(PostgresError) {
        var tail = ByteBuffer(capacity: 16)
        var lastTail = ByteBuffer(capacity: 16)
        do throws(FrontendEncodingError) {
            try FrontendMessage.execute(portal: "", into: &tail)
            if !atomic { FrontendMessage.sync(into: &tail) }
            lastTail = tail
            if atomic { FrontendMessage.sync(into: &lastTail) }
        } catch {
            throw PostgresError(.usage, message: error.message)
        }
        var types: [PostgresDataType]?
        var head = ByteBuffer()
        let lastIndex = bindings.count - 1
        for index in bindings.indices {
            let item = bindings[index]
            if let types, item.dataTypes == types {
                do throws(FrontendEncodingError) {
                    try FrontendMessage.bind(head: head, parameterCount: item.count, parameters: item.bytes, binaryResults: true, into: &out)
                } catch {
                    throw PostgresError(.usage, message: error.message)
                }
                out.writeBuffer(index == lastIndex ? lastTail : tail)
                continue
            }
            let plan = try encodeExtended(sql, item, describe: false, sync: !atomic || index == lastIndex, &out, &cache)
            if firstPlan == nil { firstPlan = plan }
            do throws(FrontendEncodingError) {
                head = try FrontendMessage.bindHead(statement: plan.statement)
            } catch {
                throw PostgresError(.usage, message: error.message)
            }
            types = item.dataTypes
        }
    }

    private func forgetStatement(_ key: StatementCache.Key) {
        state.withLock { state in
            guard let name = state.statements.remove(key) else { return }
            // Closed with the next request's messages; its CloseComplete is ignored there.
            do { try FrontendMessage.close(.statement, name: name, into: &state.writes.pending) } catch {}
        }
    }

    /// Aborts a COPY FROM STDIN the caller cannot feed, and lets other requests into the stream.
    /// A COPY started by an extended query also needs a Sync after the CopyFail: the server
    /// ignored the request's own Sync during copy-in mode.
    func refuseCopyIn(_ reason: String, extendedProtocol: Bool) {
        let (mustFlush, blocked) = state.withLock { state -> (Bool, [UnsafeContinuation<Void, Never>]) in
            do { try FrontendMessage.copyFail(reason: reason, into: &state.writes.pending) } catch {}
            if extendedProtocol { FrontendMessage.sync(into: &state.writes.pending) }
            state.exclusiveHolder = nil
            defer { state.blockedSubmitters = [] }
            return (state.writes.claimFlush(), state.blockedSubmitters)
        }
        for waiter in blocked { waiter.resume() }
        if mustFlush { Task { await self.flush() } }
    }

    /// Whether `sql` may start a COPY (it mentions the word): such a request keeps later ones out
    /// of the stream until it completes, since the server reads only COPY data meanwhile.
    static func mayStartCopy(_ sql: String) -> Bool {
        let word: [UInt8] = Array("copy".utf8)
        var matched = 0
        for byte in sql.utf8 {
            let lower = byte | 0x20
            if lower == word[matched] {
                matched += 1
                if matched == word.count { return true }
            } else {
                matched = lower == word[0] ? 1 : 0
            }
        }
        return false
    }
}
