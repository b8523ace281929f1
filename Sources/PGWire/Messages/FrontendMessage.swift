import Transport

/// Encoders for the messages a client sends, each appended to an outbound buffer so that several
/// messages leave in one write. A string with a NUL in it, or a message over 2 GiB, is refused
/// with ``FrontendEncodingError`` and leaves the buffer as it was.
public enum FrontendMessage {
    /// Message type bytes, with their ASCII letter.
    enum ID: UInt8 {
        case bind = 0x42  // B
        case close = 0x43  // C
        case copyData = 0x64  // d
        case copyDone = 0x63  // c
        case copyFail = 0x66  // f
        case describe = 0x44  // D
        case execute = 0x45  // E
        case flush = 0x48  // H
        case parse = 0x50  // P
        case password = 0x70  // p (also SASLInitialResponse and SASLResponse)
        case query = 0x51  // Q
        case sync = 0x53  // S
        case terminate = 0x58  // X
    }

    /// Protocol 3.0 (major 3 in the high 16 bits).
    public static let protocolVersion3: Int32 = 196_608
    static let sslRequestCode: Int32 = 80_877_103
    static let cancelRequestCode: Int32 = 80_877_102

    /// What Describe and Close refer to.
    public enum Target: UInt8, Sendable {
        /// 'S'
        case statement = 0x53
        /// 'P'
        case portal = 0x50
    }

    // MARK: Untyped (startup phase)

    /// StartupMessage: the protocol version (3.0 unless `version` says otherwise: major in the
    /// high 16 bits, minor in the low), then `name`/`value` pairs (`user` is required).
    public static func startup(
        version: Int32 = protocolVersion3, parameters: [(name: String, value: String)], into buffer: inout ByteBuffer
    ) throws(FrontendEncodingError) {
        try framed(nil, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            out.writeInteger(version)
            for (name, value) in parameters {
                try writeCString(name, "startup parameter name", &out)
                try writeCString(value, "startup parameter \(name)", &out)
            }
            out.writeInteger(UInt8(0))
        }
    }

    /// SSLRequest: asks the server to switch to TLS; it answers with one byte, 'S' or 'N'.
    public static func sslRequest(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(8))
        buffer.writeInteger(sslRequestCode)
    }

    /// CancelRequest, sent on a connection of its own.
    public static func cancelRequest(_ key: BackendKeyData, into buffer: inout ByteBuffer) {
        buffer.writeInteger(Int32(12 + key.secretKey.count))
        buffer.writeInteger(cancelRequestCode)
        buffer.writeInteger(key.processID)
        buffer.writeBytes(key.secretKey)
    }

    // MARK: Authentication

    /// PasswordMessage: a cleartext or MD5-hashed password.
    public static func password(_ password: String, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.password, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(password, "password", &out)
        }
    }

    /// SASLInitialResponse: the chosen mechanism and the client's first message.
    public static func saslInitialResponse(mechanism: String, data: [UInt8], into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.password, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(mechanism, "SASL mechanism", &out)
            out.writeInteger(Int32(data.count))
            out.writeBytes(data)
        }
    }

    /// SASLResponse: a later SASL message.
    public static func saslResponse(_ data: [UInt8], into buffer: inout ByteBuffer) {
        begin(.password, &buffer)
        buffer.writeInteger(Int32(4 + data.count))
        buffer.writeBytes(data)
    }

    // MARK: Queries

    /// Query: one or more SQL statements run with the simple protocol.
    public static func query(_ sql: String, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.query, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(sql, "query", &out)
        }
    }

    /// Parse: prepares `sql` as statement `name` ("" for the unnamed one).
    public static func parse(
        statement name: String, sql: String, parameterTypes: [PostgresDataType], into buffer: inout ByteBuffer
    ) throws(FrontendEncodingError) {
        guard parameterTypes.count <= Int(UInt16.max) else {
            throw FrontendEncodingError("\(parameterTypes.count) parameters; the protocol allows \(UInt16.max)")
        }
        try framed(.parse, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(name, "statement name", &out)
            try writeCString(sql, "query", &out)
            out.writeInteger(UInt16(parameterTypes.count))
            for type in parameterTypes { out.writeInteger(type.rawValue) }
        }
    }

    /// Bind: binds parameters (already encoded, each an Int32 length or -1 and its bytes, in
    /// `parameters`) to a statement, results in binary or text per `binaryResults`.
    public static func bind(
        portal: String, statement: String, parameterCount: Int, parameterFormats: [Bool], parameters: ByteBuffer,
        binaryResults: Bool, into buffer: inout ByteBuffer
    ) throws(FrontendEncodingError) {
        guard parameterCount <= Int(UInt16.max) else {
            throw FrontendEncodingError("\(parameterCount) parameters; the protocol allows \(UInt16.max)")
        }
        try framed(.bind, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(portal, "portal name", &out)
            try writeCString(statement, "statement name", &out)
            out.writeInteger(UInt16(parameterFormats.count))
            for binary in parameterFormats { out.writeInteger(Int16(binary ? 1 : 0)) }
            out.writeInteger(UInt16(parameterCount))
            out.writeBuffer(parameters)
            out.writeInteger(Int16(1))
            out.writeInteger(Int16(binaryResults ? 1 : 0))
        }
    }

    /// The part of a Bind body that stays the same from one execution of `statement` to the next:
    /// the unnamed portal, the statement's name and one format code (every parameter binary).
    /// ``bind(head:parameterCount:parameters:binaryResults:into:)`` appends the rest.
    public static func bindHead(statement: String) throws(FrontendEncodingError) -> ByteBuffer {
        var head = ByteBuffer(capacity: statement.utf8.count + 6)
        try writeCString("", "portal name", &head)
        try writeCString(statement, "statement name", &head)
        head.writeInteger(UInt16(1))
        head.writeInteger(Int16(1))
        return head
    }

    /// Bind from a ``bindHead(statement:)``: the same bytes as ``bind(portal:statement:parameterCount:parameterFormats:parameters:binaryResults:into:)``
    /// with the unnamed portal and binary parameters, in one reservation and a few copies.
    public static func bind(
        head: ByteBuffer, parameterCount: Int, parameters: ByteBuffer, binaryResults: Bool, into buffer: inout ByteBuffer
    ) throws(FrontendEncodingError) {
        guard parameterCount <= Int(UInt16.max) else {
            throw FrontendEncodingError("\(parameterCount) parameters; the protocol allows \(UInt16.max)")
        }
        let length = 4 + head.readableBytes + 2 + parameters.readableBytes + 4
        guard length <= Int(Int32.max) else { throw FrontendEncodingError("message over 2 GiB") }
        buffer.reserveWritableBytes(1 + length)
        buffer.writeInteger(ID.bind.rawValue)
        buffer.writeInteger(Int32(length))
        buffer.writeBuffer(head)
        buffer.writeInteger(UInt16(parameterCount))
        buffer.writeBuffer(parameters)
        buffer.writeInteger(Int16(1))
        buffer.writeInteger(Int16(binaryResults ? 1 : 0))
    }

    /// Describe: asks for a statement's parameter and row descriptions, or a portal's row description.
    public static func describe(_ target: Target, name: String, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.describe, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            out.writeInteger(target.rawValue)
            try writeCString(name, "name", &out)
        }
    }

    /// Execute: runs a portal, returning at most `maximumRows` rows (0: all).
    public static func execute(portal: String, maximumRows: Int32 = 0, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.execute, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(portal, "portal name", &out)
            out.writeInteger(maximumRows)
        }
    }

    /// Close: releases a prepared statement or a portal.
    public static func close(_ target: Target, name: String, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.close, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            out.writeInteger(target.rawValue)
            try writeCString(name, "name", &out)
        }
    }

    /// Sync: ends an extended-query batch; the server answers ReadyForQuery.
    public static func sync(into buffer: inout ByteBuffer) { empty(.sync, &buffer) }

    /// Rewrites typed messages this client encoded (and never sent) so that they run nothing: the
    /// Parse and Close messages are kept (the statement cache counts on them), everything else is
    /// dropped, and one Sync stands for each message that ended a response cycle (Sync or Query),
    /// so the server still answers with as many ReadyForQuery.
    static func keepingOnlyPreparation(_ messages: ByteBuffer, into output: inout ByteBuffer) {
        var input = messages
        var cycles = 0
        while let type = input.getInteger(at: 0, as: UInt8.self), let length = input.getInteger(at: 1, as: Int32.self), length >= 4,
            let message = input.readSlice(count: 1 + Int(length))
        {
            switch ID(rawValue: type) {
            case .parse?, .close?: output.writeBuffer(message)
            case .sync?, .query?: cycles += 1
            default: break
            }
        }
        for _ in 0..<cycles { sync(into: &output) }
    }

    /// Flush: asks the server to send what it has buffered.
    public static func flush(into buffer: inout ByteBuffer) { empty(.flush, &buffer) }

    /// Terminate: the polite goodbye.
    public static func terminate(into buffer: inout ByteBuffer) { empty(.terminate, &buffer) }

    // MARK: COPY

    /// CopyData: a chunk of COPY FROM STDIN data.
    public static func copyData<Bytes: Collection<UInt8>>(_ data: Bytes, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        guard data.count <= Int(Int32.max) - 4 else { throw FrontendEncodingError("a COPY chunk of \(data.count) bytes is over 2 GiB") }
        begin(.copyData, &buffer)
        buffer.writeInteger(Int32(4 + data.count))
        buffer.writeBytes(data)
    }

    /// CopyDone: the COPY FROM STDIN data is complete.
    public static func copyDone(into buffer: inout ByteBuffer) { empty(.copyDone, &buffer) }

    /// CopyFail: aborts a COPY FROM STDIN with `reason`.
    public static func copyFail(reason: String, into buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        try framed(.copyFail, &buffer) { (out: inout ByteBuffer) throws(FrontendEncodingError) in
            try writeCString(reason, "COPY failure reason", &out)
        }
    }

    // MARK: Framing

    private static func begin(_ id: ID, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(id.rawValue)
    }

    private static func empty(_ id: ID, _ buffer: inout ByteBuffer) {
        buffer.writeInteger(id.rawValue)
        buffer.writeInteger(Int32(4))
    }

    /// Writes a type byte (none for startup-phase messages), a length covering itself and the
    /// body, and the body; on an error the buffer's written bytes are rolled back.
    private static func framed(
        _ id: ID?, _ buffer: inout ByteBuffer, _ body: (inout ByteBuffer) throws(FrontendEncodingError) -> Void
    ) throws(FrontendEncodingError) {
        let start = buffer.readableBytes
        if let id { buffer.writeInteger(id.rawValue) }
        let mark = buffer.beginLengthPrefix(Int32.self)
        do {
            try body(&buffer)
            try buffer.finishLengthPrefix(mark, includingPrefix: true)
        } catch let error as FrontendEncodingError {
            buffer.truncate(toReadableBytes: start)
            throw error
        } catch {
            buffer.truncate(toReadableBytes: start)
            throw FrontendEncodingError("message over 2 GiB")
        }
    }

    private static func writeCString(_ string: String, _ what: String, _ buffer: inout ByteBuffer) throws(FrontendEncodingError) {
        do {
            try buffer.writeCString(string)
        } catch {
            throw FrontendEncodingError("\(what) contains a NUL byte, which the protocol cannot carry")
        }
    }
}

/// A message the client cannot send: a NUL inside a string, or a size over the protocol's limits.
public struct FrontendEncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
