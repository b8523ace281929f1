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
        try await runCopyIn(sql, rows: nil, body)
    }

    /// Copies typed rows into `columns` of `table` with a binary `COPY … FROM STDIN`, as
    /// asyncpg's `copy_records_to_table` does: `body` adds each row with
    /// ``PostgresCopyWriter/writeRow(_:)``, one value per column, in the order given. Values are
    /// sent in their binary form, so nothing is formatted as text or parsed back by the server.
    ///
    /// The columns' types are asked first (one round trip), so that every value can be checked
    /// against its column before it is sent: integers go into any integer column they fit (an
    /// `Int` into an `int4` column is sent as 4 bytes), `Float` and `Double` into either float
    /// column, text into `varchar`, `char(n)`, `name`, `json` and `xml` columns, JSON into `json`
    /// as well as `jsonb`, a `Date` into `timestamp` as well as `timestamptz`. A value of any
    /// other type is refused with a usage error that names its row and column, and nothing of
    /// that row is sent; rethrown from `body`, it aborts the COPY. Columns of types defined in
    /// the database (enums, extension types) take values as they are, and the server checks
    /// them. Identifiers are quoted as given. Returns the number of rows copied.
    @discardableResult
    public func copyIn(
        into table: String, schema: String? = nil, columns: [String], _ body: (inout PostgresCopyWriter) async throws -> Void
    ) async throws -> Int {
        guard !columns.isEmpty else { throw PostgresError(.usage, message: "copyIn(into:) needs at least one column") }
        let target = (schema.map { Self.quoteIdentifier($0) + "." } ?? "") + Self.quoteIdentifier(table)
        let list = columns.map(Self.quoteIdentifier).joined(separator: ", ")
        let described = try await query(PostgresQuery(unsafeSQL: "SELECT \(list) FROM \(target) LIMIT 0"))
        _ = try await described.collect()
        let rows = PostgresCopyRows(names: columns, types: described.columns.map(\.dataType))
        return try await runCopyIn("COPY \(target) (\(list)) FROM STDIN (FORMAT binary)", rows: rows, body)
    }

    private func runCopyIn(
        _ sql: String, rows: PostgresCopyRows?, _ body: (inout PostgresCopyWriter) async throws -> Void
    ) async throws -> Int {
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
        var writer = PostgresCopyWriter(connection: self, rows: rows)
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
    /// The target columns of a binary COPY of typed rows (``PostgresConnection/copyIn(into:schema:columns:_:)``).
    @usableFromInline let rows: PostgresCopyRows?
    /// Rows added with ``writeRow(_:)``, for error messages.
    @usableFromInline var rowCount = 0
    private var isFinished = false
    @usableFromInline static let chunkSize = 65536

    init(connection: PostgresConnection, rows: PostgresCopyRows?) {
        self.connection = connection
        self.rows = rows
        startChunk()
        if rows != nil {
            // The binary COPY header: signature, flags, header extension length.
            chunk.writeBytes(PostgresCopyRows.signature)
            chunk.writeInteger(Int32(0))
            chunk.writeInteger(Int32(0))
        }
    }

    private mutating func startChunk() {
        chunk.clear()
        chunk.writeInteger(UInt8(ascii: "d"))
        chunk.writeInteger(Int32(0))
    }

    /// Adds data: rows in the COPY's format (text lines, CSV, or binary tuples).
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func write<Bytes: Collection<UInt8>>(_ bytes: Bytes) async throws(PostgresError) {
        chunk.writeBytes(bytes)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Adds data from a buffer.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func write(_ buffer: ByteBuffer) async throws(PostgresError) {
        chunk.writeBuffer(buffer)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Adds a string's UTF-8 bytes (a text or CSV line, with its newline).
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func write(_ text: String) async throws(PostgresError) {
        _ = chunk.writeString(text)
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Adds one row of a COPY started by ``PostgresConnection/copyIn(into:schema:columns:_:)``:
    /// one value per column, in the columns' order; an empty Optional is NULL. Throws a usage
    /// error, adding nothing, when the number of values or a value's type does not fit the
    /// columns.
    ///
    /// Rows of up to six values take one of the fixed-arity overloads below, which the compiler
    /// specializes for the values' types; this one, for wider rows, costs a little more CPU a
    /// value.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<each Value: PostgresEncodable>(_ values: repeat each Value) async throws(PostgresError) {
        var count = 0
        for _ in repeat each values { count += 1 }
        try appendRow(count) { (writer, column) throws(PostgresError) in
            repeat try writer.appendField(each values, column: &column)
        }
        try await sendChunkIfFull()
    }

    /// Adds a row of one value; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<A: PostgresEncodable>(_ a: A) async throws(PostgresError) {
        try appendRow(1) { (w, c) throws(PostgresError) in try w.appendField(a, column: &c) }
        try await sendChunkIfFull()
    }

    /// Adds a row of two values; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<A: PostgresEncodable, B: PostgresEncodable>(_ a: A, _ b: B) async throws(PostgresError) {
        try appendRow(2) { (w, c) throws(PostgresError) in try w.appendField(a, column: &c); try w.appendField(b, column: &c) }
        try await sendChunkIfFull()
    }

    /// Adds a row of three values; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<A: PostgresEncodable, B: PostgresEncodable, C: PostgresEncodable>(
        _ a: A, _ b: B, _ c: C
    ) async throws(PostgresError) {
        try appendRow(3) { (w, i) throws(PostgresError) in
            try w.appendField(a, column: &i); try w.appendField(b, column: &i); try w.appendField(c, column: &i)
        }
        try await sendChunkIfFull()
    }

    /// Adds a row of four values; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<A: PostgresEncodable, B: PostgresEncodable, C: PostgresEncodable, D: PostgresEncodable>(
        _ a: A, _ b: B, _ c: C, _ d: D
    ) async throws(PostgresError) {
        try appendRow(4) { (w, i) throws(PostgresError) in
            try w.appendField(a, column: &i); try w.appendField(b, column: &i); try w.appendField(c, column: &i)
            try w.appendField(d, column: &i)
        }
        try await sendChunkIfFull()
    }

    /// Adds a row of five values; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<
        A: PostgresEncodable, B: PostgresEncodable, C: PostgresEncodable, D: PostgresEncodable, E: PostgresEncodable
    >(_ a: A, _ b: B, _ c: C, _ d: D, _ e: E) async throws(PostgresError) {
        try appendRow(5) { (w, i) throws(PostgresError) in
            try w.appendField(a, column: &i); try w.appendField(b, column: &i); try w.appendField(c, column: &i)
            try w.appendField(d, column: &i); try w.appendField(e, column: &i)
        }
        try await sendChunkIfFull()
    }

    /// Adds a row of six values; see ``writeRow(_:)``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public mutating func writeRow<
        A: PostgresEncodable, B: PostgresEncodable, C: PostgresEncodable, D: PostgresEncodable, E: PostgresEncodable,
        F: PostgresEncodable
    >(_ a: A, _ b: B, _ c: C, _ d: D, _ e: E, _ f: F) async throws(PostgresError) {
        try appendRow(6) { (w, i) throws(PostgresError) in
            try w.appendField(a, column: &i); try w.appendField(b, column: &i); try w.appendField(c, column: &i)
            try w.appendField(d, column: &i); try w.appendField(e, column: &i); try w.appendField(f, column: &i)
        }
        try await sendChunkIfFull()
    }

    /// Checks the row's width, writes its field count and lets `fields` encode the values; on a
    /// refusal the chunk is left as it was.
    @inlinable @inline(__always)
    mutating func appendRow(
        _ count: Int, _ fields: (inout PostgresCopyWriter, inout Int) throws(PostgresError) -> Void
    ) throws(PostgresError) {
        guard let rows else {
            throw PostgresError(.usage, message: "writeRow needs a COPY started by copyIn(into:columns:)")
        }
        guard count == rows.types.count else { throw rows.countMismatch(count, row: rowCount) }
        let rowStart = chunk.readableBytes
        chunk.writeInteger(Int16(truncatingIfNeeded: count))
        var column = 0
        do throws(PostgresError) {
            try fields(&self, &column)
        } catch {
            chunk.truncate(toReadableBytes: rowStart)
            throw error
        }
        rowCount += 1
    }

    @inlinable @inline(__always)
    nonisolated(nonsending) mutating func sendChunkIfFull() async throws(PostgresError) {
        if chunk.readableBytes >= Self.chunkSize { try await sendChunk() }
    }

    /// Encodes one field: its length, then the value in the column's type.
    @inlinable @inline(__always)
    mutating func appendField<Value: PostgresEncodable>(_ value: Value, column: inout Int) throws(PostgresError) {
        defer { column += 1 }
        guard let rows else { return }  // checked by appendRow
        if value.postgresIsNull {
            chunk.writeInteger(Int32(-1))
            return
        }
        let field = chunk.readableBytes
        chunk.writeInteger(Int32(0))
        value.encode(into: &chunk)
        let source = Value.postgresDataType
        let target = rows.types[column]
        if source != target {
            try rows.convert(&chunk, field: field, from: source, column: column, row: rowCount)
        }
        let length = chunk.readableBytes - field - 4
        guard length <= Int(Int32.max) else { throw rows.tooLarge(length, column: column, row: rowCount) }
        chunk.setInteger(Int32(truncatingIfNeeded: length), at: chunk.readerIndex + field)
    }

    @usableFromInline
    nonisolated(nonsending) mutating func sendChunk() async throws(PostgresError) {
        let length = chunk.readableBytes - 1
        guard length > 4 else { return }
        guard length <= Int(Int32.max) else {
            throw PostgresError(.usage, message: "a single COPY write of \(length) bytes is over the protocol's 2 GiB message limit")
        }
        chunk.setInteger(Int32(length), at: chunk.readerIndex + 1)
        try await connection.sendCopyData(&chunk)
        startChunk()
    }

    mutating func finish() async throws(PostgresError) {
        if rows != nil { chunk.writeInteger(Int16(-1)) }  // the binary COPY trailer
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

/// The target columns of a binary COPY of typed rows, and how a value of another type than its
/// column's is sent.
@usableFromInline
struct PostgresCopyRows: Sendable {
    @usableFromInline let names: [String]
    @usableFromInline let types: [PostgresDataType]

    /// The binary COPY signature: `PGCOPY\n\xFF\r\n\0`.
    static let signature: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00]
    /// Types created by the database (enums, domains of extension types) have OIDs from here on.
    static let firstUserOID: UInt32 = 16384

    init(names: [String], types: [PostgresDataType]) {
        self.names = names
        self.types = types
    }

    @usableFromInline
    func countMismatch(_ count: Int, row: Int) -> PostgresError {
        PostgresError(.usage, message: "COPY row \(row + 1) has \(count) values; the COPY has \(types.count) columns (\(names.joined(separator: ", ")))")
    }

    @usableFromInline
    func tooLarge(_ length: Int, column: Int, row: Int) -> PostgresError {
        PostgresError(.usage, message: "COPY row \(row + 1), column \"\(names[column])\": a value of \(length) bytes is over the 2 GiB field limit")
    }

    /// Rewrites the field at `field` (its length prefix, then the value's binary form in
    /// `source`'s type) into the column's type, or refuses it.
    @usableFromInline
    func convert(_ buffer: inout ByteBuffer, field: Int, from source: PostgresDataType, column: Int, row: Int) throws(PostgresError) {
        let target = types[column]
        let start = field + 4
        let length = buffer.readableBytes - start
        func refuse(_ why: String) -> PostgresError {
            PostgresError(.usage, message: "COPY row \(row + 1), column \"\(names[column])\" (\(target)): \(why)")
        }
        if let sourceWidth = Self.integerWidth(source), Self.integerWidth(target) != nil {
            // Read in place: a slice for decodeInteger would cost a retain per row.
            guard length == sourceWidth, let value = Self.readInteger(buffer, at: start, width: sourceWidth) else {
                throw refuse("a \(source) value of \(length) bytes")
            }
            func write<Narrow: FixedWidthInteger>(as type: Narrow.Type) throws(PostgresError) {
                guard let narrow = Narrow(exactly: value) else { throw refuse("\(value) does not fit") }
                buffer.writeInteger(narrow)
            }
            buffer.truncate(toReadableBytes: start)
            switch target {
            case .int2: try write(as: Int16.self)
            case .int4: try write(as: Int32.self)
            default: try write(as: Int64.self)
            }
            return
        }
        switch (source, target) {
        case (.float4, .float8):
            guard length == 4, let bits = buffer.getInteger(at: start, as: UInt32.self) else { throw refuse("a float4 of \(length) bytes") }
            buffer.truncate(toReadableBytes: start)
            buffer.writeInteger(Double(Float(bitPattern: bits)).bitPattern)
        case (.float8, .float4):
            guard length == 8, let bits = buffer.getInteger(at: start, as: UInt64.self) else { throw refuse("a float8 of \(length) bytes") }
            let value = Double(bitPattern: bits)
            let narrow = Float(value)
            guard narrow.isFinite || !value.isFinite else { throw refuse("\(value) is out of float4's range") }
            buffer.truncate(toReadableBytes: start)
            buffer.writeInteger(narrow.bitPattern)
        case (.jsonb, .json):
            // jsonb's binary form is a version byte (1) and the text, json's the text alone.
            guard length >= 1, buffer.getInteger(at: start, as: UInt8.self) == 1 else { throw refuse("jsonb of an unknown version") }
            let text = buffer.getSlice(at: start + 1, count: length - 1) ?? ByteBuffer()
            buffer.truncate(toReadableBytes: start)
            buffer.writeBuffer(text)
        case (.timestamptz, .timestamp), (.timestamp, .timestamptz):
            break  // the same 8 bytes: microseconds since 2000-01-01, read as UTC
        case (.text, _), (.varchar, _), (.bpchar, _), (.name, _), (.unknown, _):
            guard Self.takesText(target) else { throw refuse("a \(source) value cannot be copied into it") }
        default:
            guard target.rawValue >= Self.firstUserOID else { throw refuse("a \(source) value cannot be copied into it") }
        }
    }

    static func integerWidth(_ type: PostgresDataType) -> Int? {
        switch type {
        case .int2: 2
        case .int4: 4
        case .int8: 8
        default: nil
        }
    }

    static func readInteger(_ buffer: ByteBuffer, at offset: Int, width: Int) -> Int64? {
        switch width {
        case 2: buffer.getInteger(at: offset, as: Int16.self).map(Int64.init)
        case 4: buffer.getInteger(at: offset, as: Int32.self).map(Int64.init)
        default: buffer.getInteger(at: offset, as: Int64.self)
        }
    }

    /// Column types whose binary input is the text's UTF-8 bytes.
    static func takesText(_ type: PostgresDataType) -> Bool {
        switch type {
        case .text, .varchar, .bpchar, .name, .json, .xml, .unknown: true
        default: type.rawValue >= firstUserOID
        }
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
