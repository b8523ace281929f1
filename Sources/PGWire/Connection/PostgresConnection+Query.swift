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
    /// or update many rows one statement at a time. Returns each execution's command tag.
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
        let first = try await submit(count: requests) { (out: inout ByteBuffer, cache: inout StatementCache) throws(PostgresError) in
            for (index, item) in bindings.enumerated() {
                let last = index == bindings.count - 1
                let plan = try Self.encodeExtended(sql, item, describe: false, sync: !atomic || last, &out, &cache)
                if firstPlan == nil { firstPlan = plan }
            }
        }
        var outcomes: [Result<String, PostgresError>] = []
        outcomes.reserveCapacity(bindings.count)
        if atomic {
            let consumer = RequestConsumer(connection: self, id: first, isExtendedQuery: true)
            do throws(PostgresError) {
                while let event = try await consumer.nextEvent() {
                    if case .commandComplete(let tag) = event { outcomes.append(.success(tag)) }
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

/// The consumer side of one request: takes the events the reader delivered, one at a time,
/// fetching more when they run out. A class so that dropping the last reference abandons the
/// request (its remaining responses are then read and dropped).
final class RequestConsumer: Sendable {
    let connection: PostgresConnection
    let id: UInt64
    /// Whether a CopyInResponse is expected (copyIn); otherwise the COPY is refused with CopyFail.
    let acceptsCopyIn: Bool
    /// Whether the request is an extended query (Parse/Bind/Execute/Sync) rather than a Query.
    let isExtendedQuery: Bool
    private let progress: Mutex<Progress>

    struct Progress: Sendable {
        var pending: [PostgresConnection.Event] = []
        var index = 0
        var isComplete = false
        var commandTag: String?
        var error: PostgresError?
    }

    init(connection: PostgresConnection, id: UInt64, acceptsCopyIn: Bool = false, isExtendedQuery: Bool = false) {
        self.connection = connection
        self.id = id
        self.acceptsCopyIn = acceptsCopyIn
        self.isExtendedQuery = isExtendedQuery
        self.progress = Mutex(Progress())
    }

    deinit {
        let finished = progress.withLock { $0.isComplete && $0.index >= $0.pending.count }
        if !finished { connection.abandon(id) }
    }

    /// The command tag, once CommandComplete has been consumed.
    var commandTag: String? { progress.withLock { $0.commandTag } }

    /// The next event, or nil once the request is complete and every event was taken. An
    /// ErrorResponse is remembered and thrown at the end, when the session is in step again.
    func nextEvent() async throws(PostgresError) -> PostgresConnection.Event? {
        while true {
            let step = progress.withLock { progress -> Result<PostgresConnection.Event?, PostgresError>? in
                if progress.index < progress.pending.count {
                    let event = progress.pending[progress.index]
                    progress.index += 1
                    switch event {
                    case .commandComplete(let tag): progress.commandTag = tag
                    case .error(let diagnostics): progress.error = .server(diagnostics)
                    default: break
                    }
                    return .success(event)
                }
                progress.pending.removeAll(keepingCapacity: true)
                progress.index = 0
                guard progress.isComplete else { return nil }
                if let error = progress.error { return .failure(error) }
                return .success(nil)
            }
            if let step {
                let event = try step.get()
                if case .copyIn? = event, !acceptsCopyIn {
                    connection.refuseCopyIn("this request cannot send COPY data; use copyIn", extendedProtocol: isExtendedQuery)
                }
                return event
            }
            let (events, complete) = try await connection.nextEvents(id)
            progress.withLock { progress in
                progress.pending += events
                progress.isComplete = complete
            }
        }
    }

    /// Puts the event just taken back, so the next call returns it again.
    func unread() {
        progress.withLock { progress in
            if progress.index > 0 { progress.index -= 1 }
        }
    }

    /// Reads to the end, dropping rows and data: for callers that only want the outcome.
    func drain() async throws(PostgresError) {
        while try await nextEvent() != nil {}
    }
}

/// One extended query's rows, on top of its events.
final class PostgresRowStream: Sendable {
    let consumer: RequestConsumer

    init(connection: PostgresConnection, id: UInt64) {
        consumer = RequestConsumer(connection: connection, id: id, isExtendedQuery: true)
    }

    var commandTag: String? { consumer.commandTag }

    /// Waits for the statement's columns (or its failure, or its end without rows). Even when the
    /// cache knows the columns, it waits for the first response: an error before any row (a
    /// changed plan, a failed cast) is thrown here, where the query can still be retried.
    func start(plan: PostgresConnection.Plan) async throws(PostgresError) -> [RowDescription.Column] {
        while let event = try await consumer.nextEvent() {
            switch event {
            case .rowDescription(let description):
                // Bind asked for every result column in binary.
                return description.columns.map { column in
                    var binary = column
                    binary.isBinary = true
                    return binary
                }
            case .noData:
                return []
            case .row, .commandComplete, .emptyQuery, .portalSuspended:
                consumer.unread()
                return plan.columns ?? []
            case .error:
                try await consumer.drain()  // throws the error once the request is complete
            default:
                continue
            }
        }
        return plan.columns ?? []
    }

    /// The next row, or nil at the end. Throws the server's error if the statement failed midway.
    func next(columns: [RowDescription.Column]) async throws(PostgresError) -> PostgresRow? {
        while let event = try await consumer.nextEvent() {
            if case .row(let data) = event { return PostgresRow(columns: columns, data: data) }
        }
        return nil
    }
}

/// The rows of one query, as they arrive. Iterate it once; dropping it unread discards the rest.
public struct PostgresRowSequence: AsyncSequence, Sendable {
    public typealias Element = PostgresRow

    let stream: PostgresRowStream
    /// The result's columns.
    public let columns: [RowDescription.Column]

    /// Iterates the rows.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: PostgresRowStream
        let columns: [RowDescription.Column]

        /// The next row, or nil after the last.
        public mutating func next() async throws(PostgresError) -> PostgresRow? {
            try await stream.next(columns: columns)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(PostgresError) -> PostgresRow? {
            try await stream.next(columns: columns)
        }
    }

    /// An iterator over the rows.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream, columns: columns) }

    /// All remaining rows, collected.
    public func collect() async throws(PostgresError) -> [PostgresRow] {
        var rows: [PostgresRow] = []
        var iterator = makeAsyncIterator()
        while let row = try await iterator.next() { rows.append(row) }
        return rows
    }
}
