import Synchronization
import Transport

extension PostgresConnection {
    /// Runs `COPY … FROM STDIN` and streams the data `body` writes through the
    /// ``PostgresCopyWriter``, in whatever format the statement names (text, CSV or binary). The
    /// data goes out in chunks as it is written, never buffered whole. Returns the number of rows
    /// the server copied. If `body` throws, the COPY is aborted (CopyFail) and the error rethrown.
    ///
    /// Requests made by other tasks meanwhile wait until the data is complete: the server reads
    /// nothing but COPY data until then.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (inout PostgresCopyWriter) async throws -> Void) async throws -> Int {
        let id = try await submit(exclusive: true) { (out: inout ByteBuffer, _: inout StatementCache) throws(PostgresError) in
            do throws(FrontendEncodingError) {
                try FrontendMessage.query(sql, into: &out)
            } catch {
                throw PostgresError(.usage, message: error.message)
            }
        }
        let consumer = RequestConsumer(connection: self, id: id, acceptsCopyIn: true)
        // Until the server answers CopyInResponse, the statement may still fail (a syntax error,
        // a missing table) or turn out not to be a COPY FROM STDIN.
        var started = false
        do {
            while let event = try await consumer.nextEvent() {
                if case .copyIn = event {
                    started = true
                    break
                }
            }
        } catch {
            endExclusive(id)
            throw error
        }
        guard started else {
            endExclusive(id)
            throw PostgresError(.usage, message: "the statement did not start COPY FROM STDIN")
        }
        var writer = PostgresCopyWriter(connection: self)
        do {
            try await body(&writer)
            try await writer.finish()
        } catch {
            await writer.abort(reason: "\(error)")
            try? await consumer.drain()
            throw error
        }
        try await consumer.drain()
        return Int(consumer.commandTag?.split(separator: " ").last ?? "") ?? 0
    }

    /// Runs `COPY … TO STDOUT` and returns its data as it arrives, in chunks as the server sends
    /// them (a row each in text and CSV format). Nothing is read ahead of the consumer.
    public func copyOut(_ sql: String) async throws(PostgresError) -> PostgresCopyOutSequence {
        let id = try await submit(exclusive: true) { (out: inout ByteBuffer, _: inout StatementCache) throws(PostgresError) in
            do throws(FrontendEncodingError) {
                try FrontendMessage.query(sql, into: &out)
            } catch {
                throw PostgresError(.usage, message: error.message)
            }
        }
        let consumer = RequestConsumer(connection: self, id: id)
        while let event = try await consumer.nextEvent() {
            if case .copyOut(let response) = event { return PostgresCopyOutSequence(consumer: consumer, isBinary: response.isBinary) }
        }
        throw PostgresError(.usage, message: "the statement did not start COPY TO STDOUT")
    }

    /// Appends CopyData to the queue and writes it, waiting while earlier bytes are still going out.
    /// The chunk is handed over without a copy when nothing else is queued (the usual case: the
    /// COPY holds the stream); `chunk` comes back as an empty buffer to fill next.
    func sendCopyData(_ chunk: inout ByteBuffer) async throws(PostgresError) {
        let mustFlush = try state.withLock { state throws(PostgresError) -> Bool in
            if let failure = state.failure { throw failure }
            if state.writes.pending.isEmpty {
                swap(&state.writes.pending, &chunk)
            } else {
                state.writes.pending.writeBuffer(chunk)
            }
            return state.writes.claimFlush()
        }
        if mustFlush {
            await flush()
        } else {
            await waitForDrain()
        }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// Queues CopyDone or CopyFail and ends the COPY's exclusive use of the stream.
    func endCopy(fail reason: String?) async {
        let mustFlush = state.withLock { state -> Bool in
            state.exclusiveHolder = nil
            if let reason {
                do { try FrontendMessage.copyFail(reason: reason, into: &state.writes.pending) } catch {
                    try? FrontendMessage.copyFail(reason: "copy aborted", into: &state.writes.pending)
                }
            } else {
                FrontendMessage.copyDone(into: &state.writes.pending)
            }
            return state.writes.claimFlush()
        }
        wakeBlockedSubmitters()
        if mustFlush { await flush() }
    }
}

/// Writes COPY FROM STDIN data. The protocol lets CopyData boundaries fall anywhere, so writes
/// are gathered into one CopyData message of about 64 KiB and sent as the socket takes it. The
/// writes are inlinable: a row that only joins the chunk costs no asynchronous call.
public struct PostgresCopyWriter: ~Copyable {
    let connection: PostgresConnection
    /// A CopyData message under construction: type byte, length (filled in on send), data.
    @usableFromInline var chunk = ByteBuffer(capacity: 65536 + 4096)
    private var isFinished = false
    @usableFromInline static let chunkSize = 65536

    init(connection: PostgresConnection) {
        self.connection = connection
        startChunk()
    }

    private mutating func startChunk() {
        chunk.clear()
        chunk.writeInteger(UInt8(ascii: "d"))
        chunk.writeInteger(Int32(0))
    }

    /// Adds data: rows in the COPY's format (text lines, CSV, or binary tuples).
    @inlinable
    public mutating func write<Bytes: Collection<UInt8>>(_ bytes: Bytes) async throws(PostgresError) {
        chunk.writeBytes(bytes)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Adds data from a buffer.
    @inlinable
    public mutating func write(_ buffer: ByteBuffer) async throws(PostgresError) {
        chunk.writeBuffer(buffer)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Adds a string's UTF-8 bytes (a text or CSV line, with its newline).
    @inlinable
    public mutating func write(_ text: String) async throws(PostgresError) {
        _ = chunk.writeString(text)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    @usableFromInline
    mutating func sendChunk() async throws(PostgresError) {
        let length = chunk.readableBytes - 1
        guard length > 4 else { return }
        chunk.setInteger(Int32(length), at: chunk.readerIndex + 1)
        try await connection.sendCopyData(&chunk)
        startChunk()
    }

    mutating func finish() async throws(PostgresError) {
        try await sendChunk()
        isFinished = true
        await connection.endCopy(fail: nil)
    }

    mutating func abort(reason: String) async {
        guard !isFinished else { return }
        isFinished = true
        startChunk()
        await connection.endCopy(fail: String(reason.prefix(200)).replacingNULs())
    }
}

extension String {
    fileprivate func replacingNULs() -> String { String(unicodeScalars.filter { $0 != "\u{0}" }.map(Character.init)) }
}

/// The data of a COPY TO STDOUT, chunk by chunk.
public struct PostgresCopyOutSequence: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let consumer: RequestConsumer
    /// Whether the data is in binary COPY format.
    public let isBinary: Bool

    /// Iterates the chunks.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: RequestConsumer

        /// The next chunk, or nil after the last; throws the server's error if the COPY failed.
        public mutating func next() async throws(PostgresError) -> ByteBuffer? {
            try await Self.chunk(from: consumer)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(PostgresError) -> ByteBuffer? {
            try await Self.chunk(from: consumer)
        }

        private static func chunk(from consumer: RequestConsumer) async throws(PostgresError) -> ByteBuffer? {
            while let event = try await consumer.nextEvent() {
                if case .copyData(let data) = event { return data }
            }
            return nil
        }
    }

    /// An iterator over the chunks.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }

    /// The command tag once the data is consumed (`COPY 50000`).
    public var commandTag: String? { consumer.commandTag }
}
