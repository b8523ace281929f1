import Synchronization
import Transport

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
        try await take(atMost: 1)?.first
    }

    /// Every event that has arrived and was not taken yet (at least one), or nil once the request
    /// is complete and all were taken: one lock per batch instead of one per event, for callers
    /// that go through many (rows). The command tag and an error are noted as by ``nextEvent()``;
    /// the error is thrown at the end.
    func nextEvents() async throws(PostgresError) -> ArraySlice<PostgresConnection.Event>? {
        try await take(atMost: .max)
    }

    /// Up to `limit` events not taken yet (at least one, fetching more when none is left), or
    /// nil at the end; notes the command tag and an error as they go by.
    private func take(atMost limit: Int) async throws(PostgresError) -> ArraySlice<PostgresConnection.Event>? {
        while true {
            let step = progress.withLock { progress -> Result<ArraySlice<PostgresConnection.Event>?, PostgresError>? in
                if progress.index < progress.pending.count {
                    let end = limit >= progress.pending.count - progress.index ? progress.pending.count : progress.index + limit
                    let taken = progress.pending[progress.index..<end]
                    progress.index = end
                    for event in taken {
                        switch event {
                        case .commandComplete(let tag): progress.commandTag = tag
                        case .error(let diagnostics): progress.error = .server(diagnostics)
                        default: continue
                        }
                    }
                    return .success(taken)
                }
                progress.pending = []  // the next events come as an array of their own
                progress.index = 0
                guard progress.isComplete else { return nil }
                if let error = progress.error { return .failure(error) }
                return .success(nil)
            }
            if let step {
                let events = try step.get()
                if !acceptsCopyIn, events?.contains(where: { if case .copyIn = $0 { true } else { false } }) == true {
                    connection.refuseCopyIn("this request cannot send COPY data; use copyIn", extendedProtocol: isExtendedQuery)
                }
                return events
            }
            let (events, complete) = try await connection.nextEvents(id)
            progress.withLock { progress in
                // Usually nothing is left over: take the array as it is rather than copy it.
                if progress.pending.isEmpty { progress.pending = events } else { progress.pending += events }
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
