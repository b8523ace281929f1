import Synchronization
import Transport

/// One extended query's rows, on top of its events.
@usableFromInline
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

    /// The next row, or nil at the end, taken from `batch` and refilled with every event that has
    /// arrived when it runs out (one lock per batch, not per row). Throws the server's error if
    /// the statement failed midway.
    @usableFromInline
    nonisolated(nonsending) func next(
        columns: [RowDescription.Column], batch: inout ArraySlice<PostgresConnection.Event>
    ) async throws(PostgresError) -> PostgresRow? {
        while true {
            if let row = Self.takeRow(from: &batch, columns: columns) { return row }
            guard let more = try await consumer.nextEvents() else { return nil }
            batch = more
        }
    }

    /// The next row in `batch`, skipping the events that are not rows; nil when it runs out.
    @usableFromInline
    static func takeRow(from batch: inout ArraySlice<PostgresConnection.Event>, columns: [RowDescription.Column]) -> PostgresRow? {
        while let event = batch.popFirst() {
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
        @usableFromInline let stream: PostgresRowStream
        @usableFromInline let columns: [RowDescription.Column]
        /// Events taken from the connection and not yet gone through.
        @usableFromInline var batch: ArraySlice<PostgresConnection.Event> = []

        init(stream: PostgresRowStream, columns: [RowDescription.Column]) {
            self.stream = stream
            self.columns = columns
        }

        /// The next row, or nil after the last. A row of the batch already taken is returned
        /// inline, on the caller's executor: no asynchronous call, no executor switch per row.
        @inlinable
        nonisolated(nonsending) public mutating func next() async throws(PostgresError) -> PostgresRow? {
            if let row = PostgresRowStream.takeRow(from: &batch, columns: columns) { return row }
            return try await stream.next(columns: columns, batch: &batch)
        }

        /// The same, as `for try await` calls it (``next()`` runs on the caller's isolation).
        @inlinable
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(PostgresError) -> PostgresRow? {
            try await next()
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
