import Synchronization
import Transport

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
